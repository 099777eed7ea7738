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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cis.csv", "cis.png", "results.json", "timeline.png"]
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
