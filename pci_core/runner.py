"""The run loop every CIS measurement goes through: CISSweep, CIS Study, the command line, the demo
study and the distributed study alike.

Host-free: what makes and judges the images arrives as a function, measure(seeds, ks) -> scores
(len(seeds), len(ks)), and a run folder (pci_core.results.RunStore) keeps what is done.
- full_run: every k, seeds in blocks; each finished block is written before the next starts, so an
  interrupted run loses only the block it was in and a re-run resumes after the last written one.
- adaptive_run: the adaptive lock-in search (pci_core.adaptive) over all seeds at once (its rounds
  need every seed's decisions), written when it ends; a folder holding it is read back.
Both return the result restricted to the requested seeds, in the requested order (the folder may
hold more: another shard's, or an earlier, larger run's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import adaptive
from .cis import CISResult
from .results import RESULTS_FILE, RunStore, read_results
from .sweep_plan import seed_blocks

# measure(seeds, ks) -> scores (len(seeds), len(ks)): every (seed, k) branch sampled, decoded and judged.
Measure = Callable[[list, list], np.ndarray]


def pending_blocks(store: RunStore, seeds: Sequence[int], block_size: int) -> list[list[int]]:
    """The requested seeds not yet in the store, in order, cut into blocks of block_size: what full_run
    will measure (a progress bar sizes itself by it)."""
    done = set(store.done_seeds())
    return seed_blocks([s for s in seeds if s not in done], block_size)


def full_run(store: RunStore, seeds: Sequence[int], measure: Measure, block_size: int,
             on_block: Callable[[list], None] | None = None) -> CISResult:
    """Every k of the store's header for each requested seed not yet stored, block_size seeds per
    measure call, each block written when done; on_block(block) after each write."""
    ks = list(store.header["ks"])
    for block in pending_blocks(store, seeds, block_size):
        store.add(block, measure(block, ks))
        if on_block is not None:
            on_block(block)
    return store.result().restrict(seeds)


def adaptive_run(folder: Path, header: dict, seeds: Sequence[int], measure: Measure, stride: int | None = None,
                 budget: float = adaptive.DEFAULT_BUDGET) -> tuple[CISResult, adaptive.AdaptiveSearch | None]:
    """The adaptive search over all seeds; the header's ks are replaced by the ks it measured. A folder
    that already holds this run (same settings, same seeds) is read back (the search is then None)."""
    seeds = list(seeds)
    path = Path(folder) / RESULTS_FILE
    if path.exists():
        stored, stored_seeds, _ = read_results(path)
        store = RunStore(folder, {**header, "ks": stored["ks"]})  # refuses other settings
        if sorted(stored_seeds) != sorted(seeds):
            raise ValueError(f"{path} holds an adaptive run over seeds {stored_seeds}; the adaptive search measures "
                             "all seeds together, so it resumes only with the same seeds (or write it elsewhere)")
        return store.result().restrict(seeds), None
    search, scores = adaptive_scores(seeds, measure, header["steps"], header["threshold"], stride, budget)
    store = RunStore(folder, {**header, "ks": search.ks})
    store.add(seeds, scores)
    return store.result().restrict(seeds), search


def concept_run(folder: Path, header: dict, seeds: Sequence[int], measure: Measure, adaptive_search: bool,
                block_size: int) -> CISResult:
    """One concept of a study in its run folder: the adaptive search over all seeds (adaptive_run), or every
    k in blocks of block_size seeds (full_run); the header's settings record which ("search")."""
    header = {**header, "settings": {**header["settings"], "search": "adaptive" if adaptive_search else "full"}}
    if adaptive_search:
        return adaptive_run(folder, header, seeds, measure)[0]
    return full_run(RunStore(folder, header), seeds, measure, block_size)


def adaptive_scores(seeds: Sequence[int], measure: Measure, steps: int, threshold: float, stride: int | None = None,
                    budget: float = adaptive.DEFAULT_BUDGET) -> tuple[adaptive.AdaptiveSearch, np.ndarray]:
    """The adaptive search over all seeds, written nowhere: the search and the scores (S, len(search.ks)) of
    every k it measured (adaptive_run keeps them in a run folder; a study worker hands them back)."""
    seeds, scores_by_k = list(seeds), {}

    def decide(ks: list) -> np.ndarray:
        scores = np.asarray(measure(seeds, list(ks)), dtype=np.float64)
        scores_by_k.update({k: scores[:, i] for i, k in enumerate(ks)})
        return scores >= threshold

    search = adaptive.adaptive_search(decide, steps, stride, budget)
    return search, np.stack([scores_by_k[k] for k in search.ks], axis=1)
