"""Judge throughput on this machine: images/s per backend at batch 1 and batch 32, side by side in one run.

    python bench/judges.py [--device cpu] [--threads N] [--seconds 1] [--rounds 3]

Models are random-init and built here (no download): rule; clip on a tiny open_clip config and on ViT-B-32
(the realistic size: 224 px, 88 M parameters); vqa on a tiny Qwen2.5-VL. Every model goes through
load_judge from a saved file, as in use. Images are demo-world renders (32 x 32, the clip and vqa judges
resize them to their own input size). Text embeddings are cached after the first call, as in use.
setup s: building the random model, saving it and load_judge.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from pci_core import judges  # noqa: E402
from pci_core.demo import world  # noqa: E402
from pci_core.judges.tiny import TINY_CLIP, register_tiny_clip, save_clip, save_tiny_vqa  # noqa: E402

def tiny_vqa_words() -> list[str]:
    return ["[UNK]", "yes", "no", "Yes", "No"] + list(world.VOCABULARY)


def images_per_second(judge: judges.Judge, images: torch.Tensor, batch: int, seconds: float) -> float:
    """Throughput scoring `batch` images per call; one warm-up call, then calls until `seconds` have passed."""
    judge.score(images[:batch], "a large red circle", "a shape")
    starts = range(0, len(images) - batch + 1, batch)
    done, start = 0, time.perf_counter()
    for call in itertools.count():
        i = starts[call % len(starts)]
        judge.score(images[i:i + batch], "a large red circle", "a shape")
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum timed seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per judge and batch; the best is shown")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="pci_bench_judges_"))
    register_tiny_clip(folder)
    candidates = {
        "rule": lambda: judges.load_judge("rule", device=args.device),
        "clip tiny (32 px)": lambda: judges.load_judge("clip", model=TINY_CLIP, weights=save_clip(TINY_CLIP, folder),
                                                       device=args.device),
        "clip ViT-B-32 (224 px)": lambda: judges.load_judge("clip", model="ViT-B-32",
                                                            weights=save_clip("ViT-B-32", folder), device=args.device),
        "vqa tiny Qwen2.5-VL": lambda: judges.load_judge("vqa", weights=save_tiny_vqa(folder, tiny_vqa_words()), device=args.device),
    }
    images = torch.from_numpy(world.render_batch(64, seed=0)[0])
    loaded, setup_s = {}, {}
    for name, load in candidates.items():
        start = time.perf_counter()
        loaded[name] = load()
        setup_s[name] = time.perf_counter() - start
    # Rounds interleave the judges, so a burst of other load on the machine hits all of them; best of rounds.
    best = {(name, batch): 0.0 for name in loaded for batch in (1, 32)}
    for _ in range(args.rounds):
        for name, judge in loaded.items():
            for batch in (1, 32):
                best[name, batch] = max(best[name, batch], images_per_second(judge, images, batch, args.seconds))
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"images {tuple(images.shape[1:3])}, best of {args.rounds} rounds of >= {args.seconds:g} s")
    print(f"{'judge':<24} {'setup s':>8} {'batch 1 img/s':>14} {'batch 32 img/s':>15}")
    for name in loaded:
        print(f"{name:<24} {setup_s[name]:>8.2f} {best[name, 1]:>14.1f} {best[name, 32]:>15.1f}")


if __name__ == "__main__":
    main()
