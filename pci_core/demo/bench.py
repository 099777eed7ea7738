"""Benchmark: a full CIS sweep two ways in one run, the official loop and the branching engine.

Official loop (the paper's code): for every seed and every k, a fresh batch-1 run of all T steps.
Branching engine: every (seed, k) branch in one batch and one sampler run, shared prefixes
evaluated once. Both must give identical latents; the ratios are printed side by side.
"""
from __future__ import annotations

import time

import torch

from .. import insertion
from . import demo_model, pipeline


def official_loop(model, base, concept, seeds, ks, settings, counter):
    return torch.stack([torch.stack([pipeline.insertion_latents(model, base, concept, [s], [k], settings,
                                                                counter=counter)[0, 0] for k in ks])
                        for s in seeds])


def run(seeds: int = 8, steps: int = 20, samplers=("euler", "euler_ancestral"), max_batch: int | None = None,
        base: str = "a red circle", concept: str = "a blue circle", weights=None) -> list[dict]:
    model = demo_model.load(weights)
    seed_list, ks = list(range(seeds)), list(range(steps + 1))
    rows = []
    for sampler in samplers:
        settings = pipeline.SamplerSettings(steps=steps, sampler=sampler)
        naive_count, branch_count = insertion.EvalCounter(), insertion.EvalCounter()
        t = time.perf_counter()
        naive = official_loop(model, base, concept, seed_list, ks, settings, naive_count)
        naive_s = time.perf_counter() - t
        t = time.perf_counter()
        branched = pipeline.insertion_latents(model, base, concept, seed_list, ks, settings, max_batch=max_batch,
                                              counter=branch_count)
        branch_s = time.perf_counter() - t
        identical = torch.equal(naive, branched)
        rows.append({"sampler": sampler, "branches": len(seed_list) * len(ks), "naive_evals": naive_count.rows,
                     "branch_evals": branch_count.rows, "eval_ratio": branch_count.rows / naive_count.rows,
                     "naive_s": naive_s, "branch_s": branch_s, "time_ratio": branch_s / naive_s,
                     "identical": identical, "max_abs_diff": (naive - branched).abs().max().item()})
    return rows


def report(rows: list[dict], seeds: int, steps: int) -> str:
    lines = [f"CIS sweep on the demo model: S = {seeds} seeds x K = {steps + 1} insertion steps (k = 0..{steps}), "
             f"T = {steps}, CFG 4 (rows = conditioned evaluations; each is a cond+uncond pair)",
             f"{'sampler':16s} {'naive rows':>10s} {'branch rows':>11s} {'ratio':>6s} {'naive s':>8s} "
             f"{'branch s':>8s} {'ratio':>6s}  identical"]
    for r in rows:
        lines.append(f"{r['sampler']:16s} {r['naive_evals']:10d} {r['branch_evals']:11d} {r['eval_ratio']:6.3f} "
                     f"{r['naive_s']:8.2f} {r['branch_s']:8.2f} {r['time_ratio']:6.3f}  "
                     f"{'yes' if r['identical'] else 'NO (max diff %.1e)' % r['max_abs_diff']}")
    return "\n".join(lines)
