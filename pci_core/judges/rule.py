"""rule: the demo world's exact pixel judge (1.0 where every attribute the concept names is read
back from the pixels). It lives with the judges, not the demo world, because it is a judge like the
others to every node and command; it is the only judge that imports the demo world."""
from __future__ import annotations

import torch

from ..demo import world
from .base import Judge


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


class RuleJudge(Judge):
    """1.0 where every attribute the concept names is read back from the pixels, else 0.0."""

    name = "rule"

    def _score(self, images, concept, contrast):
        attributes = parse_concept(concept)
        return torch.from_numpy(world.judge_batch(images.cpu().numpy(), attributes))
