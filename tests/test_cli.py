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
    assert "judged on {'colour': 'blue'}" in r.stdout and "tau50" in r.stdout
    assert len([l for l in r.stdout.splitlines() if l[:4].strip().isdigit()]) == 7  # k = 0..6
    assert (tmp_path / "cis.png").stat().st_size > 1000 and (tmp_path / "branches.png").exists()
