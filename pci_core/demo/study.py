"""A concept study on the demo model: the demo world as a taxonomy, every value a concept.

The base is fixed ("a large red circle on the left on a black background"); a taxonomy list named
after a demo attribute ("demo_world.colour": red, green, blue, yellow) becomes one concept list: the
template is the base with that attribute as the slot ("a large {} circle on the left on a black
background"), and the rule judge looks for the attribute alone ("a blue shape", as the `cis` command
judges). A value equal to the base's (red) is skipped: its concept prompt is the base prompt, so
nothing would be inserted; the base-only control (k = T) of every other concept is the check that
the base image does not show the concept.

Each concept is a run folder <out>/<attribute>/<value>/ (results.RunStore): a full sweep adds its
seeds block by block (resumable, shardable by seed block); the adaptive search (study.adaptive_search)
measures all seeds together per round, so it resumes and shards by concept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import insertion, study
from ..cis import CISResult
from ..judges.rule import RuleJudge
from ..results import RESULTS_FILE, RunStore, read_results
from . import demo_model, pipeline, sweep, world

BASE = "a large red circle on the left on a black background"
TAXONOMY = Path(__file__).with_name("taxonomy.json")
SEED_BLOCK = 8  # seeds per branching run of a full sweep: results are written after each block


def attribute_concepts(base: str, path: str, values: Sequence[str]) -> study.ConceptList:
    """The concept list of a taxonomy list whose last key names a demo attribute ("x.colour")."""
    attribute = path.rsplit(".", 1)[-1]
    if attribute not in world.ATTRIBUTES:
        raise ValueError(f"taxonomy path {path!r}: the demo model studies lists named after its attributes "
                         f"({', '.join(world.ATTRIBUTES)}), not {attribute!r}")
    wrong = [v for v in values if v not in world.ATTRIBUTES[attribute]]
    if wrong:
        raise ValueError(f"taxonomy path {path!r}: {wrong} are not demo-world values of {attribute}; "
                         f"valid: {', '.join(world.ATTRIBUTES[attribute])}")
    base_attributes = world.parse_prompt(base)
    if attribute not in base_attributes:
        raise ValueError(f"base {base!r} names no {attribute}; the demo study varies what the base names")
    template = world.make_prompt({**base_attributes, attribute: study.SLOT})
    return study.concept_list(template, base_attributes[attribute], list(values),
                              judge_template=world.make_prompt({attribute: study.SLOT}))


def taxonomy_concepts(taxonomy: dict, path: str = "", base: str = BASE) -> dict[str, study.ConceptList]:
    """Concept lists per attribute list under a dotted path of a taxonomy (keyed by the list's path)."""
    return {p: attribute_concepts(base, p, values) for p, values in study.taxonomy_lists(taxonomy, path).items()}


def concept_header(base: str, concept: study.Concept, settings: pipeline.SamplerSettings, weights: str | None,
                   adaptive: bool, ks: Sequence[int] | None = None) -> dict:
    header = sweep.run_header(base, concept.prompt, concept.judge_text, settings, weights)
    header["settings"]["search"] = "adaptive" if adaptive else "full"
    if ks is not None:
        header["ks"] = list(ks)
    return header


def measure_fn(model: demo_model.DemoModel, base: str, concept: study.Concept, seeds: Sequence[int],
               settings: pipeline.SamplerSettings, max_batch: int | None, counter: insertion.EvalCounter | None,
               scores_by_k: dict):
    """measure(ks) -> decisions (S, len(ks)) for adaptive_search: one branching run over the ks, decoded
    and judged by the rule judge; the scores land in scores_by_k (for the run folder)."""
    judge = RuleJudge()

    @torch.no_grad()
    def measure(ks: list[int]) -> np.ndarray:
        latents = pipeline.insertion_latents(model, base, concept.prompt, seeds, ks, settings, max_batch=max_batch,
                                             counter=counter)
        images = model.decode(latents.reshape(-1, *latents.shape[2:]))
        scores = judge.score(images, concept.judge_text).numpy().reshape(len(seeds), len(ks))
        scores_by_k.update({k: scores[:, i] for i, k in enumerate(ks)})
        return scores >= sweep.JUDGE_THRESHOLD

    return measure


def run_full(model, base: str, concept: study.Concept, seeds: Sequence[int], settings, folder: Path,
             weights: str | None, max_batch: int | None, seed_block: int = SEED_BLOCK,
             counter: insertion.EvalCounter | None = None) -> CISResult:
    """Every k for every seed, in seed blocks; seeds already in the folder are read back."""
    store = RunStore(folder, concept_header(base, concept, settings, weights, adaptive=False))
    done = set(store.done_seeds())
    todo = [s for s in seeds if s not in done]
    judge = RuleJudge()
    for i in range(0, len(todo), seed_block):
        block = todo[i:i + seed_block]
        with torch.no_grad():
            latents = pipeline.insertion_latents(model, base, concept.prompt, block, range(settings.steps + 1),
                                                 settings, max_batch=max_batch, counter=counter)
            images = model.decode(latents.reshape(-1, *latents.shape[2:]))
        store.add(block, judge.score(images, concept.judge_text).numpy().reshape(len(block), -1))
    return store.result().select_seeds(np.isin(store.result().seeds, list(seeds)))


def run_adaptive(model, base: str, concept: study.Concept, seeds: Sequence[int], settings, folder: Path,
                 weights: str | None, max_batch: int | None, counter: insertion.EvalCounter | None = None,
                 stride: int | None = None, budget: float = 0.35) -> tuple[CISResult, study.AdaptiveSearch | None]:
    """The adaptive search over all seeds at once; a folder that already holds this concept's adaptive
    run with the same seeds is read back (None for the search)."""
    header = concept_header(base, concept, settings, weights, adaptive=True)
    path = folder / RESULTS_FILE
    if path.exists():
        stored, stored_seeds, _ = read_results(path)
        store = RunStore(folder, {**header, "ks": stored["ks"]})  # refuses other settings
        if sorted(stored_seeds) != sorted(seeds):
            raise ValueError(f"{path} holds an adaptive run over seeds {stored_seeds}; the adaptive search measures "
                             f"all seeds together, so it resumes only with the same seeds (or use another --out)")
        return store.result(), None
    scores_by_k: dict[int, np.ndarray] = {}
    search = study.adaptive_search(measure_fn(model, base, concept, seeds, settings, max_batch, counter, scores_by_k),
                                   settings.steps, stride, budget)
    store = RunStore(folder, concept_header(base, concept, settings, weights, True, search.ks))
    store.add(list(seeds), np.stack([scores_by_k[k] for k in search.ks], axis=1))
    return store.result(), search


def run_study(model, concept_lists: dict[str, study.ConceptList], seeds: Sequence[int], out: Path,
              settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), adaptive: bool = False,
              weights: str | None = None, max_batch: int | None = None, progress=None,
              base: str = BASE, seed_block: int = SEED_BLOCK) -> list[tuple[str, str, CISResult]]:
    """Every concept of every list, each in <out>/<attribute>/<value>/; returns (key, label, result) in
    order and writes <out>/study.json (the order and labels, read by merge). A full sweep runs seed_block
    seeds per branching run: shards cut at block boundaries compute exactly what one whole run does."""
    out = Path(out)
    entries, results = [], []
    for path, concepts in concept_lists.items():
        attribute = path.rsplit(".", 1)[-1]
        for concept in concepts.concepts:
            key = f"{study.folder_name(attribute)}/{study.folder_name(concept.value)}"
            label = f"{attribute}: {concept.value}"
            if adaptive:
                result, _ = run_adaptive(model, base, concept, seeds, settings, out / key, weights, max_batch)
            else:
                result = run_full(model, base, concept, seeds, settings, out / key, weights, max_batch, seed_block)
            entries.append((key, label))
            results.append((key, label, result))
            if progress:
                progress(label, result)
    study.write_index(out, entries)
    return results
