"""The demo world's exact pixel judge, backend "rule" (1.0 where every attribute the concept names is
read back from the pixels). It is a judge like the others to every node and command (the judge
interface is pci_core.judges'), but it reads the demo world, so it lives here with it: the engine
never imports the demo world, and the judge loader offers this backend through the demo adapter."""
from __future__ import annotations

import torch

from ..judges.base import Judge
from . import world


def parse_concept(concept: str) -> dict[str, str]:
    """Demo-world attributes a concept names; ValueError for unknown words or a concept naming none."""
    try:
        attributes = world.parse_prompt(concept)
    except ValueError as e:
        raise ValueError(f"concept: {e}") from None
    if not attributes:
        raise ValueError(f"concept {concept!r} names no demo-world attribute; name at least one value of "
                         + "; ".join(f"{a}: {', '.join(v)}" for a, v in world.ATTRIBUTES.items()))
    return attributes


def check_square(images: torch.Tensor) -> None:
    """The demo world is square and the judge reads positions and shapes relative to it; a resize of a
    non-square image would squash a circle into an ellipse, so such an image is refused instead."""
    h, w = images.shape[1:3]
    if h != w:
        raise ValueError(f"images: the rule judge reads the demo world's square images (the demo model makes "
                         f"64x64); got {h}x{w} (height x width): crop or scale them to a square first")


class RuleJudge(Judge):
    """1.0 where every attribute the concept names is read back from the pixels, else 0.0.

    This is the one definition of CIS on the demo world: the judge text decides what is judged, and
    every attribute it names must be seen. A sweep passes its judge text; the demo command's default
    judge text is the attributes the concept changes (pci_core.demo.demo_measure.default_judge_text)."""

    name = "rule"

    def _score(self, images, concept, contrast):
        attributes = parse_concept(concept)
        check_square(images)
        return torch.from_numpy(world.judge_batch(images.cpu().numpy(), attributes))
