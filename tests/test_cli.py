"""The main job from the command line."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", "pci_core", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_demo_writes_pngs(tmp_path):
    out = tmp_path / "out"
    r = run("demo", "--prompt", "a small yellow square on the right", "--n", "3", "--steps", "8", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "seed0000.png", "seed0001.png", "seed0002.png"]
    assert str(out.resolve()) in r.stdout
    from PIL import Image
    assert Image.open(out / "seed0000.png").size == (512, 512)


def test_unknown_word_is_a_clear_error(tmp_path):
    r = run("demo", "--prompt", "a purple circle", "--out", str(tmp_path))
    assert r.returncode == 2
    assert "purple" in r.stderr and "knows" in r.stderr and "Traceback" not in r.stderr


def test_cis_prints_the_curve_and_writes_the_plot(tmp_path):
    r = run("cis", "--base", "a red circle", "--concept", "a blue circle", "--n", "4", "--steps", "6",
            "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "judged on 'a blue shape'" in r.stdout and "tau50: step" in r.stdout and "controls: k=0" in r.stdout
    assert len([l for l in r.stdout.splitlines() if l[:5].strip().isdigit()]) == 7  # k = 0..6
    assert sorted(p.name for p in tmp_path.iterdir()) == [".results.lock", "cis.csv", "cis.png", "results.json", "timeline.png"]
    from PIL import Image
    from pci_core import results
    assert Image.open(tmp_path / "cis.png").size == (1000, 550) and Image.open(tmp_path / "timeline.png").size[0] > 7 * 128
    stored = results.merge_runs([tmp_path])
    assert stored.seeds == [0, 1, 2, 3] and stored.ks == list(range(7)) and stored.settings["sampler"] == "euler"
    assert (tmp_path / "cis.csv").read_text().count("\n") == 8  # header + k = 0..6


def test_cis_resumes_its_out_folder_and_refuses_other_settings(tmp_path, capsys):
    from pci_core import cli  # in-process: three runs of the real demo model, without three interpreter starts
    args = ["cis", "--base", "a red circle", "--concept", "a small red circle", "--steps", "2"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert cli.main([*args, "--n", "2", "--out", str(whole)]) == 0
    assert cli.main([*args, "--n", "1", "--out", str(resumed)]) == 0
    capsys.readouterr()
    assert cli.main([*args, "--n", "2", "--out", str(resumed)]) == 0
    assert "1 computed now, 1 read back" in capsys.readouterr().out
    for name in ("results.json", "cis.csv"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes()
    before = {p.name: p.read_bytes() for p in resumed.iterdir()}
    assert cli.main([*args, "--n", "2", "--cfg", "2", "--out", str(resumed)]) == 2
    err = capsys.readouterr().err
    assert "settings.cfg" in err and "nothing was overwritten" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in resumed.iterdir()} == before


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_bad_inputs_end_in_one_line_naming_them_before_any_work(tmp_path, capsys, monkeypatch):
    """Each case is refused before the model is loaded or anything is computed (demo_model.load would
    raise here), with one line naming the input, exit 2, and nothing written."""
    from pci_core import cli
    from pci_core.demo import demo_model
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    monkeypatch.setattr(demo_model, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work was done")))
    cases = [
        (["cis", "--out", str(a_file)], "--out"),
        (["cis", "--out", str(a_file / "run")], "is a file"),
        (["demo", "--out", str(a_file)], "--out"),
        (["study", "pci_core/demo/taxonomy.json", "--out", str(a_file)], "--out"),
        (["merge", str(tmp_path), "--out", str(a_file)], "--out"),
        (["cis", "--n", "0", "--out", str(tmp_path / "c")], "--n=0"),
        (["demo", "--n", "0", "--out", str(tmp_path / "d")], "--n=0"),
        (["study", "pci_core/demo/taxonomy.json", "--n", "0", "--out", str(tmp_path / "s")], "--n=0"),
        (["cis", "--seed", "-3", "--out", str(tmp_path / "c")], "--seed=-3"),
        (["demo", "--seed", "-1", "--out", str(tmp_path / "d")], "--seed=-1"),
        (["cis", "--cfg", "nan", "--out", str(tmp_path / "c")], "--cfg=nan"),
        (["cis", "--cfg", "-1", "--out", str(tmp_path / "c")], "--cfg=-1"),
        (["cis", "--steps", "0", "--out", str(tmp_path / "c")], "--steps=0"),
        (["cis", "--sampler", "heun", "--out", str(tmp_path / "c")], "--sampler 'heun'"),
        (["fidelity", "--samples", "0"], "--samples=0"),
        (["edit-eval", "--seeds", "0"], "--seeds=0"),
        (["edit-eval", "--edits", "colour,hue"], "--edits hue"),
        (["train", "--out", str(tmp_path)], "is a folder"),
    ]
    for argv, named in cases:
        assert cli.main(argv) == 2, argv
        line = _one_error_line(capsys)
        assert named in line, (argv, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing made


def test_weights_that_are_not_the_demo_model_are_named(tmp_path, capsys):
    from pci_core import cli
    not_safetensors = tmp_path / "weights.safetensors"
    not_safetensors.write_bytes(b"\x00" * 64)
    assert cli.main(["demo", "--weights", str(not_safetensors), "--out", str(tmp_path / "d")]) == 2
    line = _one_error_line(capsys)
    assert "--weights" in line and "not a safetensors file" in line and str(not_safetensors) in line
    from safetensors.torch import save_file
    import torch
    other = tmp_path / "other.safetensors"
    save_file({"unet.conv_in.weight": torch.zeros(1)}, str(other))
    assert cli.main(["demo", "--weights", str(other), "--out", str(tmp_path / "d")]) == 2
    assert "do not fit the demo model" in _one_error_line(capsys)
    assert cli.main(["demo", "--weights", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "d")]) == 2
    assert "'missing.safetensors' not found in folder" in _one_error_line(capsys)
