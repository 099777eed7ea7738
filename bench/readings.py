"""The two readings of a CIS curve that falls through 0.5 more than once, on real demo-model curves (not a
test): the crossing nearest the clean end (the default; the official runner's first_crossing, which reads
CIS rising from k = T) and the one nearest the noisy end (the first fall from k = 0). euler_ancestral and
judge texts naming several attributes give seeds whose edit takes at k, not at k + 1, and again later;
the curves of 4 and 8 seeds, and the bootstrap intervals of 8, 16 and 32, are printed where the
readings differ.

    OMP_NUM_THREADS=1 .venv/bin/python bench/readings.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pci_core import cis  # noqa: E402
from pci_core.demo import demo_model, pipeline, demo_measure  # noqa: E402
from pci_core.demo.world import DEMO_BASE  # noqa: E402

CONCEPTS = [("a small blue square on the right on a white background", None),
            ("a large blue square on the left on a black background", "a blue square"),
            ("a large green triangle at the top on a gray background", None),
            ("a large yellow circle on the left on a white background", "a yellow shape on a white background")]


def main() -> int:
    torch.set_num_threads(1)
    model, settings = demo_model.load(), pipeline.SamplerSettings(steps=20, sampler="euler_ancestral")
    ks, sigmas = list(range(21)), pipeline.sigmas_for(settings).tolist()
    for concept, text in CONCEPTS:
        text = text or demo_measure.default_judge_text(DEMO_BASE, concept)
        scores = demo_measure.demo_measure(model, DEMO_BASE, concept, text, settings)(list(range(32)), ks)
        d = scores >= 0.5
        print(f"\n{text!r} (euler_ancestral, 20 steps, 32 seeds): seeds whose decisions rise again: "
              f"{sum(bool((row[1:] > row[:-1]).any()) for row in d)}")
        for n in (4, 8):
            for start in range(0, 32, n):
                curve = d[start:start + n].mean(0)
                clean, noisy = (cis.first_crossing(ks, curve, 0.5, r) for r in (cis.CLEAN_END, cis.NOISY_END))
                if clean != noisy:
                    print(f"  seeds {start}-{start + n - 1}: tau50 {clean:.2f} (clean end) vs {noisy:.2f} (noisy end); "
                          f"CIS {' '.join(f'{c:.2f}' for c in curve)}")
        for n in (8, 16, 32):
            result = cis.CISResult(list(range(n)), ks, 20, sigmas, scores[:n], 0.5, text)
            a, b = (cis.summarize(result, reading=r)["crossings"]["tau50"] for r in (cis.CLEAN_END, cis.NOISY_END))
            if (a["step"], a["step_ci"]) != (b["step"], b["step_ci"]):
                print(f"  {n} seeds: clean end {a['step']:.2f} [{a['step_ci'][0]:.2f}, {a['step_ci'][1]:.2f}], "
                      f"noisy end {b['step']:.2f} [{b['step_ci'][0]:.2f}, {b['step_ci'][1]:.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
