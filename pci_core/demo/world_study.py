"""A concept study on the demo model: the demo world as a taxonomy, every value a concept.

The base is fixed ("a large red circle on the left on a black background"); a taxonomy list named
after a demo attribute ("demo_world.colour": red, green, blue, yellow) becomes one concept list: the
template is the base with that attribute as the slot ("a large {} circle on the left on a black
background"), and the rule judge looks for the attribute alone ("a blue shape", as the `cis` command
judges). A value equal to the base's (red) is skipped: its concept prompt is the base prompt, so
nothing would be inserted; the base-only control (k = T) of every other concept is the check that
the base image does not show the concept.

Each concept is a run folder <out>/<attribute>/<value>/ (results.RunStore): a full sweep adds its
seeds block by block (resumable, shardable by seed block); the adaptive search (pci_core.adaptive)
measures all seeds together per round, so it resumes and shards by concept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .. import insertion, runner, study, taxonomy
from ..cis import CISResult
from . import pipeline, demo_measure, world

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


def taxonomy_concepts(tree: dict, path: str = "", base: str = world.DEMO_BASE) -> dict[str, study.ConceptList]:
    """Concept lists per attribute list under a dotted path of a taxonomy (keyed by the list's path)."""
    return {p: attribute_concepts(base, p, values) for p, values in taxonomy.taxonomy_lists(tree, path).items()}


def run_concept(model, base: str, concept: study.Concept, seeds: Sequence[int], settings, folder: Path,
                weights: str | None, adaptive: bool, max_batch: int | None = None, seed_block: int = SEED_BLOCK,
                counter: insertion.EvalCounter | None = None) -> CISResult:
    """One concept in its run folder through pci_core.runner: every k in seed blocks (seeds already there
    are read back), or the adaptive search over all seeds."""
    measure = demo_measure.demo_measure(model, base, concept.prompt, concept.judge_text, settings, max_batch, counter)
    header = demo_measure.demo_header(base, concept.prompt, concept.judge_text, settings, weights)
    return runner.concept_run(folder, header, seeds, measure, adaptive, seed_block)


def run_study(model, concept_lists: dict[str, study.ConceptList], seeds: Sequence[int], out: Path,
              settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), adaptive: bool = False,
              weights: str | None = None, max_batch: int | None = None, progress=None,
              base: str = world.DEMO_BASE, seed_block: int = SEED_BLOCK) -> list[tuple[str, str, CISResult]]:
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
            result = run_concept(model, base, concept, seeds, settings, out / key, weights, adaptive, max_batch,
                                 seed_block)
            entries.append((key, label))
            results.append((key, label, result))
            if progress:
                progress(label, result)
    study.write_index(out, entries)
    return results
