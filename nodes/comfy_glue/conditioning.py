"""What base and concept conditionings may differ in, and a concept encoded like its base.

PCI switches the text: base and concept should differ in nothing else. A conditioning also carries
what nodes add to it (FluxGuidance's guidance, CLIPTextEncodeSDXL's sizes, areas, masks, strength,
timestep ranges, ControlNet hints); a concept prompt encoded fresh lacks them, and the concept branch
then runs with the model's defaults (FLUX: guidance 3.5) without a word. differences() names each such
key with both values; encode_like() encodes a text with every extra of the base. A weight hook (a LoRA
set on the concept by CreateHookLora + Cond Set Props, or SetClipHooks) is the other intervention PCI
measures: inserted at step k like a prompt, never warned about.
"""
from __future__ import annotations

import logging

import torch

# Keys the text encoder itself writes from the text: their values belong to the text (compared by presence
# and shape only); every other key is something a node added.
TEXT_KEYS = ("pooled_output", "attention_mask")
INTERVENTION_KEYS = ("hooks",)  # weight hooks (LoRAs) on the concept: what is being inserted, like the text


_ABSENT = object()


def _shown(value) -> str:
    if value is _ABSENT:
        return "not set (the model's default)"
    if isinstance(value, torch.Tensor):
        return f"a tensor {tuple(value.shape)}" + (f" = {value.item():g}" if value.numel() == 1 else "")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and torch.equal(a.detach().cpu(), b.detach().cpu()))
    if isinstance(a, (int, float, str, bool, tuple, type(None))) and isinstance(b, (int, float, str, bool, tuple, type(None))):
        return a == b
    return a is b  # ControlNets, hooks, models: the same object or not


def differences(base, concept, names: tuple[str, str] = ("base", "concept")) -> list[str]:
    """One sentence per way the two conditionings differ beyond their text, e.g. "guidance: base 2.0,
    concept not set (the model's default)"; [] when they differ in text only."""
    if len(base) != len(concept):
        return [f"{names[0]} has {len(base)} conditioning entries, {names[1]} {len(concept)} (combined or area "
                "conditionings): each entry of one should have its counterpart in the other"]
    found = []
    for i, (b, c) in enumerate(zip(base, concept)):
        where = f" (entry {i})" if len(base) > 1 else ""
        for key in sorted(set(b[1]) | set(c[1]), key=str):
            x, y = b[1].get(key, _ABSENT), c[1].get(key, _ABSENT)
            if key in INTERVENTION_KEYS:
                continue
            if key in TEXT_KEYS:
                shape = lambda v: None if v is _ABSENT or v is None else tuple(getattr(v, "shape", ()))
                if shape(x) != shape(y):
                    found.append(f"{key}{where}: {names[0]} {_shown(x)}, {names[1]} {_shown(y)} (another text encoder?)")
            elif not _same(x, y):
                found.append(f"{key}{where}: {names[0]} {_shown(x)}, {names[1]} {_shown(y)}")
    return found


def same_conditioning(a, b) -> bool:
    """The two conditionings hold the same tensors (e.g. the same text, encoded by the same CLIP) and the same
    weight hooks: inserting one for the other changes nothing."""
    return len(a) == len(b) and all(x[0].shape == y[0].shape and torch.equal(x[0], y[0])
                                    and all(_same(x[1].get(k, _ABSENT), y[1].get(k, _ABSENT)) for k in INTERVENTION_KEYS)
                                    for x, y in zip(a, b))


def warnings(node: str, base, concept, names: tuple[str, str] = ("base", "concept")) -> list[str]:
    """What a node should say about its two conditionings (each also logged): the same text (nothing would
    change), or extras that differ (the concept branch runs with other settings, not just other words)."""
    if same_conditioning(base, concept):
        found = [f"{names[0]} and {names[1]} conditioning are the same: every k gives the same image"]
    else:
        found = [f"{names[0]} and {names[1]} differ in more than their text: {d}; encode the {names[1]} with "
                 f"'PCI Concept Encode' (the {names[0]}'s extras copied) or give both the same nodes"
                 for d in differences(base, concept, names)]
    for message in found:
        logging.warning(f"{node}: {message}")
    return found


def encode(clip, text: str) -> list:
    """A CONDITIONING of text, as CLIPTextEncode makes it."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def encode_like(clip, text: str, base) -> list:
    """text encoded by clip as CLIPTextEncode does, with every extra of the base's first entry that the
    encoder does not write itself (guidance, sizes, area, mask, strength, timestep range, control)."""
    fresh = encode(clip, text)
    extras = {k: v for k, v in base[0][1].items() if k not in TEXT_KEYS}
    return [[cond, {**extras, **own}] for cond, own in fresh]
