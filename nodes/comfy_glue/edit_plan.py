"""What Best Timestep Edit measures before a rule (pci_core.edit_rules) chooses k, and the words it says:
which measurement a rule needs, the candidates the rule chooses from, and the explanation output."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...pci_core.cis import CISResult
from ...pci_core.edit_rules import RULES, StepChoice

PROBE, THIS_EDIT, NOTHING = "probe", "this edit", "nothing"


@dataclass
class Candidates:
    """What a rule chooses from: the candidate steps with mean edit success and preservation per step
    (None where unmeasured), the judge's decisions on the edit itself ('latest yes'), and the CIS result
    the tau rule reads (a cis_result, or the probe's)."""
    ks: list[int] | None = None
    success: list[float] | None = None
    preservation: list[float] | None = None
    decisions: np.ndarray | None = None
    result: CISResult | None = None


def measurement(rule: str, has_judge: bool, has_cis_result: bool) -> str:
    """What BestTimestepEdit measures before the rule chooses k: THIS_EDIT ("latest yes": the edit itself at
    every k), PROBE (helper seeds at every k, whenever a judge is connected: the plot's curves, and the
    tau rule's CIS without a cis_result) or NOTHING. ValueError naming judge when the rule needs one."""
    if rule not in RULES:
        raise ValueError(f"rule {rule!r}: valid rules are {', '.join(RULES)}")
    needs = {"best score": ("needs edit success and preservation per step", "or use rule tau with a cis_result"),
             "latest yes": ("needs the judge's reading of the edit at every step", "or use rule fixed"),
             "tau": ("without cis_result needs CIS per step", "or connect cis_result")}
    if not has_judge and (rule in ("best score", "latest yes") or (rule == "tau" and not has_cis_result)):
        what, other = needs[rule]
        raise ValueError(f"judge: rule {rule!r} {what}: connect a PCI Judge Loader to judge (the node probes "
                         f"with it), {other}")
    return THIS_EDIT if rule == "latest yes" else PROBE if has_judge else NOTHING


def probe_seeds(seed: int, n: int) -> list[int]:
    """The probe's helper seeds: the n seeds after the edited one (wrapping at ComfyUI's seed range)."""
    return [(seed + 1 + i) % 0x10000000000000000 for i in range(n)]


def measured_by(kind: str, seed: int, image_given: bool, judge_text: str, n_probe: int,
                has_cis_result: bool) -> tuple[str, str]:
    """(what measured the candidate steps, the plot's label for its success curve), for the explanation."""
    if kind == THIS_EDIT:
        what = (f"the edit of seed {seed} (first image of the batch) made at every k in one sampler run"
                if not image_given else "the input image inverted to every k and finished with the edit prompt "
                "from each")
        return what + f", judged on {judge_text!r}", "judge score (this edit)"
    if kind == PROBE:
        return "probe over seeds " + ", ".join(str(s) for s in probe_seeds(seed, n_probe)), "edit success (probe)"
    return ("cis_result" if has_cis_result else "no measurements"), "CIS (cis_result)"


def edit_description(k: int, steps: int, seed: int, image_given: bool, inversion_cfg: float) -> str:
    """How the edit was made at k, in words."""
    if image_given:
        return (f"input image: inverted with the source prompt (euler, cfg {inversion_cfg}) to the noise level of "
                f"step {k}, then steps {k}..{steps} with the edit prompt")
    return f"seed {seed}: " + ("the edit prompt at every step (regenerated)" if k == 0 else
                               f"source prompt for steps 0..{k - 1}, edit prompt from step {k}")


def explanation(choice: StepChoice, measured: str, how: str) -> str:
    """BestTimestepEdit's explanation output: which rule chose k and why, what measured it, how it was made."""
    return f"{choice.reason}\nMeasured by: {measured}.\nEdit: {how}."
