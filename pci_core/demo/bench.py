"""Benchmark: a full CIS sweep two ways in one run, the official loop and the branching engine.

Official loop (the paper's code): for every seed and every k, a fresh batch-1 run of all T steps,
written independently of the engine (pci_core.demo.reference: a plain loop that switches by step
index, its own sampler updates). Branching engine: every (seed, k) branch in one batch and one
sampler run, shared prefixes evaluated once. Both are decoded and judged by the rule judge: every
decision must be the same, and the latents may differ only by float noise (the two send the model
different batch layouts, which CPU kernels round differently: up to 1.4e-4 in this default run at one
torch thread, none measured at two), at most reference.LATENT_TOLERANCE. The command exits 1 when a
decision differs or the difference passes the tolerance. The ratios are printed side by side.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import insertion
from . import demo_model, pipeline, reference
from .rule_judge import RuleJudge
from .demo_measure import JUDGE_THRESHOLD, default_judge_text


def official_loop(model, base, concept, seeds, ks, settings, counter):
    """Latents (S, K, 4, 8, 8) of the paper's loop: a fresh batch-1 reference run per seed and k."""
    return reference.official_loop(model, base, concept, seeds, ks, settings, counter=counter)


def decisions_of(model, latents: torch.Tensor, judge_text: str) -> np.ndarray:
    """Rule-judge decisions (S, K) of latents (S, K, 4, 8, 8)."""
    images = model.decode(latents.reshape(-1, *latents.shape[2:]))
    scores = RuleJudge().score(images, judge_text).numpy().reshape(latents.shape[:2])
    return scores >= JUDGE_THRESHOLD


@torch.no_grad()
def run(seeds: int = 8, steps: int = 20, samplers=("euler", "euler_ancestral"), max_batch: int | None = None,
        base: str = "a red circle", concept: str = "a blue circle", weights=None,
        tolerance: float = reference.LATENT_TOLERANCE) -> list[dict]:
    model = demo_model.load(weights)
    seed_list, ks = list(range(seeds)), list(range(steps + 1))
    judge_text = default_judge_text(base, concept)
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
        naive_decisions, branch_decisions = decisions_of(model, naive, judge_text), decisions_of(model, branched,
                                                                                               judge_text)
        same = int((naive_decisions == branch_decisions).sum())
        max_diff = (naive - branched).abs().max().item()
        agree = same == naive_decisions.size and max_diff <= tolerance
        rows.append({"sampler": sampler, "branches": len(seed_list) * len(ks), "naive_evals": naive_count.rows,
                     "branch_evals": branch_count.rows, "eval_ratio": branch_count.rows / naive_count.rows,
                     "naive_s": naive_s, "branch_s": branch_s, "time_ratio": branch_s / naive_s,
                     "judged": judge_text, "same_decisions": same, "decisions": int(naive_decisions.size),
                     "decisions_identical": same == naive_decisions.size,
                     "latents_identical": torch.equal(naive, branched), "max_abs_diff": max_diff,
                     "tolerance": tolerance, "agree": agree})
    return rows


def report(rows: list[dict], seeds: int, steps: int) -> str:
    lines = [f"CIS sweep on the demo model: S = {seeds} seeds x K = {steps + 1} insertion steps (k = 0..{steps}), "
             f"T = {steps}, CFG 4 (rows = conditioned evaluations; each is a cond+uncond pair)",
             f"{'sampler':16s} {'naive rows':>10s} {'branch rows':>11s} {'ratio':>6s} {'naive s':>8s} "
             f"{'branch s':>8s} {'ratio':>6s}  {'decisions':>9s}  {'max |diff|':>10s}  agree"]
    for r in rows:
        lines.append(f"{r['sampler']:16s} {r['naive_evals']:10d} {r['branch_evals']:11d} {r['eval_ratio']:6.3f} "
                     f"{r['naive_s']:8.2f} {r['branch_s']:8.2f} {r['time_ratio']:6.3f}  "
                     f"{'%d/%d' % (r['same_decisions'], r['decisions']):>9s}  {r['max_abs_diff']:10.1e}  "
                     + ("yes" if r["agree"] else "NO"))
    if rows:
        lines.append(f"naive = the official loop (pci_core.demo.reference: a fresh batch-1 run per seed and k); "
                     f"decisions: same rule-judge decision on {rows[0]['judged']!r}; max |diff|: largest latent "
                     f"difference, float noise from the two batch layouts (0 = bit for bit), allowed up to "
                     f"{rows[0]['tolerance']:.0e}")
    return "\n".join(lines)
