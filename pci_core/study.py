"""Concept studies: many concepts against one base, the study table, study folders and their merge.

Host-free (numpy only). A study inserts many concept values into one prompt template against one
base value ("a photo of a {} person" with base "young" and values "old", "middle-aged", ...); each
concept is an ordinary CIS run with its own result folder (pci_core.results.RunStore), so a study
resumes concept by concept and shards (concept, seed block) merge (results.merge_runs).

Concept values come as text (one per line) or from a taxonomy file (pci_core.taxonomy).

A concept is measured by every k (pci_core.runner.full_run) or by the adaptive lock-in search
(pci_core.adaptive, pci_core.runner.adaptive_run).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


from . import cis
from .results import RESULTS_FILE, header_differences, merge_runs, write_atomic

SLOT = "{}"


# ---------------------------------------------------------------- concept lists

@dataclass(frozen=True)
class Concept:
    """One concept of a study: its value, the prompt it is inserted with, what the judge looks for."""
    value: str
    prompt: str         # the template with the value
    judge_text: str     # the judge template with the value
    contrast: str       # the judge template with the base value (the judge's "not the concept")


@dataclass(frozen=True)
class ConceptList:
    """A study's concepts against one base prompt. skipped: values equal to the base value, which
    would insert nothing (base and concept prompt are the same text)."""
    template: str
    base_value: str
    base_prompt: str
    concepts: tuple[Concept, ...]
    skipped: tuple[str, ...] = ()


def fill(template: str, value: str) -> str:
    """The template with its slot replaced by value; an empty value removes the slot and the space
    around it collapses ("a {} person" -> "a person")."""
    return re.sub(r"\s+", " ", template.replace(SLOT, value)).strip()


def check_template(template: str, name: str = "template") -> str:
    if not isinstance(template, str) or SLOT not in template:
        raise ValueError(f"{name} {template!r}: needs a {SLOT} slot where the concept value goes, "
                         f"e.g. 'a photo of a {SLOT} person at a playground'")
    return template


def parse_values(values: str | Sequence[str], name: str = "values") -> list[str]:
    """Concept values from text (one per line) or a list: stripped, blank lines dropped; ValueError
    naming the input when none is left or a value repeats."""
    items = values.splitlines() if isinstance(values, str) else list(values)
    wrong = [(i, type(v).__name__) for i, v in enumerate(items) if not isinstance(v, str)]
    if wrong:
        kind = {"NoneType": "null", "bool": "true/false", "dict": "an object"}.get(wrong[0][1], wrong[0][1])
        raise ValueError(f"{name}: item {wrong[0][0]} is {kind}; every value must be text such as \"old\"")
    items = [v.strip() for v in items if v.strip()]
    if not items:
        raise ValueError(f"{name}: empty; give the concept values one per line, e.g. 'old' and 'young'")
    repeated = sorted({v for v in items if items.count(v) > 1})
    if repeated:
        raise ValueError(f"{name}: duplicate concept(s) {repeated}; each value may appear once "
                         "(its result folder is named after it)")
    return items


def check_distinct_folders(values: Sequence[str], name: str = "values") -> None:
    """ValueError naming two values whose result folders would be one (folder_name: "old person" and
    "old_person", "blue" and "blue."), before any work."""
    seen: dict[str, str] = {}
    for value in values:
        other = seen.setdefault(folder_name(value), value)
        if other != value:
            raise ValueError(f"{name}: {other!r} and {value!r} would share the result folder {folder_name(value)!r}; "
                             "make them differ in letters or digits")


def concept_list(template: str, base_value: str, values: str | Sequence[str],
                 judge_template: str | None = None) -> ConceptList:
    """Prompts and judge texts of a study. judge_template (default: the prompt template) says what the
    judge looks for, e.g. "a {} shape"; values equal to base_value are skipped (listed in skipped)."""
    check_template(template)
    judge_template = check_template(judge_template or template, "judge_template")
    base_value = (base_value or "").strip()
    items = parse_values(values)
    check_distinct_folders(items)
    kept = [v for v in items if v != base_value]
    if not kept:
        raise ValueError(f"values: every value equals the base value {base_value!r}; nothing would be inserted")
    concepts = tuple(Concept(v, fill(template, v), fill(judge_template, v), fill(judge_template, base_value))
                     for v in kept)
    return ConceptList(template, base_value, fill(template, base_value), concepts,
                       tuple(v for v in items if v == base_value))


def folder_name(value: str) -> str:
    """A concept's result folder name: its value with anything but letters, digits, '-', '_' and '.'
    replaced, so every value gets a portable folder."""
    name = re.sub(r"[^\w.-]+", "_", value.strip()).strip("._")
    return name or "concept"


# ---------------------------------------------------------------- the study table

def _crossing_cell(c: dict) -> str:
    if c["step"] is None:
        return "never"
    lo, hi = c["step_ci"]
    return f"{c['step']:.2f}" + ("" if lo is None else f" [{lo:.1f}, {hi:.1f}]")


def _control(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def study_table(summaries: Sequence[dict], labels: Sequence[str] | None = None) -> str:
    """One row per concept (a cis.summarize result): tau50 and tau70 in steps with their bootstrap
    95% intervals, tau50 on the noise axis, the controls, the seeds and the measured ks. Rows keep
    the given order; a warning of a concept is listed under the table."""
    labels = [s["concept"] for s in summaries] if labels is None else list(labels)
    if len(labels) != len(summaries):
        raise ValueError(f"study_table: {len(labels)} labels for {len(summaries)} summaries")
    head = ["concept", "tau50 (step) [95%]", "tau70 (step) [95%]", "tau50 (noise)", "CIS k=0", "CIS k=T",
            "seeds", "ks measured"]
    rows = []
    for label, s in zip(labels, summaries):
        c50, c70 = s["crossings"].get("tau50"), s["crossings"].get("tau70")
        rows.append([label, _crossing_cell(c50) if c50 else "-", _crossing_cell(c70) if c70 else "-",
                     "never" if not c50 or c50["tau"] is None else f"{c50['tau']:.3f}",
                     _control(s["controls"]["concept_only"]), _control(s["controls"]["base_only"]),
                     str(s["n_seeds"]), f"{len(s['rows'])} of {s['steps'] + 1}"])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
    out = [line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]
    out += [f"WARNING {label}: {w}" for label, s in zip(labels, summaries) for w in s["warnings"]]
    return "\n".join(out)


# ---------------------------------------------------------------- study folders: index, shards, merge

INDEX_FILE = "study.json"
# Header parts every concept of one study shares but these: the concept, its prompt (as text and as a
# conditioning label) and, in an adaptive study, its measured ks.
PER_CONCEPT_KEYS = ("concept", "ks", "settings.concept_prompt", "settings.concept_text")


def write_index(folder: Path, entries: Sequence[tuple[str, str]]) -> None:
    """study.json: the concepts of a study in order, as (run folder relative to the study, label)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / INDEX_FILE, json.dumps({"concepts": [{"folder": f, "label": lab} for f, lab in entries]},
                                                  indent=1) + "\n")


def run_folders(study: Path) -> list[tuple[str, str, Path]]:
    """(key, label, folder) of every run in a study folder: the order and labels of its study.json, then
    any other folder holding a results.json (sorted); a run folder given itself is its own study."""
    study = Path(study)
    if not study.is_dir():
        raise ValueError(f"{study} is not a folder")
    if (study / RESULTS_FILE).is_file():
        return [(study.name, study.name, study)]
    found: list[tuple[str, str, Path]] = []
    index = study / INDEX_FILE
    if index.is_file():
        try:
            entries = json.loads(index.read_text(encoding="utf-8"))["concepts"]
            found = [(e["folder"], e["label"], study / e["folder"]) for e in entries
                     if (study / e["folder"] / RESULTS_FILE).is_file()]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{index} is not a study index ({e}); it was left as it is") from None
    listed = {key for key, _, _ in found}
    for path in sorted(study.rglob(RESULTS_FILE)):
        key = path.parent.relative_to(study).as_posix()
        if key not in listed:
            found.append((key, key, path.parent))
    if not found:
        raise ValueError(f"{study} holds no run folder (no {RESULTS_FILE} in it or below it)")
    return found


def study_differences(a: dict, b: dict) -> list[str]:
    """Header keys two concepts of one study may not differ in (all but PER_CONCEPT_KEYS)."""
    return [k for k in header_differences(a, b) if k not in PER_CONCEPT_KEYS]


def merge_studies(studies: Sequence[Path]) -> list[tuple[str, str, cis.CISResult]]:
    """(key, label, merged result) per concept from study folders of several machines (shards: seed
    blocks and/or concepts). A concept's shards merge by results.merge_runs (refused when their
    settings differ); concepts of different settings (sampler, steps, judge, base prompt, ...) are
    refused too, since one table and plot would compare them. Order: the first study's, then new ones."""
    if not studies:
        raise ValueError("merge: no study folder given")
    groups: dict[str, list[Path]] = {}
    labels: dict[str, str] = {}
    for study in studies:
        for key, label, folder in run_folders(Path(study)):
            groups.setdefault(key, []).append(folder)
            labels.setdefault(key, label)
    merged = [(key, labels[key], merge_runs(folders)) for key, folders in groups.items()]
    first_key, first = merged[0][0], merged[0][2].header()
    for key, _, result in merged[1:]:
        diff = study_differences(first, result.header())
        if diff:
            raise ValueError(f"cannot merge one study from concepts with different settings: {first_key!r} "
                             f"({', '.join(map(str, groups[first_key]))}) and {key!r} "
                             f"({', '.join(map(str, groups[key]))}) differ in {', '.join(diff)}")
    return merged


def write_study_files(found, out: Path, title: str, reading: str | None = None) -> str:
    """The study table (returned, and study.txt) and the overlaid CIS plot (study.png) of (key, label, result)."""
    from . import plots
    from .images import save_png
    summaries = [cis.summarize(r, reading=reading or cis.DEFAULT_READING) for _, _, r in found]
    labels = [label for _, label, _ in found]
    text = study_table(summaries, labels)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.txt").write_text(text + "\n", encoding="utf-8")
    save_png(plots.cis_plot(summaries, labels, title), out / "study.png", 1)
    return text
