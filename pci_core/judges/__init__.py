"""Judges: does an image show a concept? One interface, two backends here (and the demo world's rule judge).

A judge scores a batch of images against a concept text:

    judge.score(images, concept, contrast=None) -> float tensor (B,) in [0, 1], on the CPU
    judge.decide(scores, threshold=0.5)          -> bool tensor (B,): True where score >= threshold
                                                    (a score exactly at the threshold counts as yes)

Images are ComfyUI's IMAGE layout: a float tensor (B, H, W, 3) in [0, 1]; one (H, W, 3) image is a batch of one.

Backends (load_judge(backend, ...) builds one; the same arguments return the same object):
- "clip": open_clip zero-shot: softmax of logit_scale * cosine between the image and two texts, the concept
  and a contrast (the base prompt, else "a photo"); each text is the mean normalised embedding over
  prompt templates ("a photo of {}.").
- "vqa": a transformers vision-language model (e.g. Qwen2.5-VL) asked a yes/no question; the score is
  P(yes) from the next-token logits of the answer tokens "yes" and "no", not a parsed string.

Weights come only from local files; nothing here downloads. A missing file is a FileNotFoundError that names
the file and the folder looked in. open_clip and transformers are imported only inside their backends.

The demo world's exact pixel judge (backend "rule", pci_core.demo.judge) implements the same interface; it
lives with the demo world, which the engine never imports.

Modules: base (interface, checks, summaries), clip, vqa (one backend each), weights (local files).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .base import (BACKENDS, DEFAULT_CLIP_TEMPLATES, DEFAULT_CONTRAST, DEFAULT_VQA_QUESTION, NO_WORDS, YES_WORDS,
                   Judge, annotate, check_backend, check_device, check_templates, check_text,
                   check_threshold, decide, require, summarize)
from .weights import _mtime, read_state_dict, resolve_weights

__all__ = ["BACKENDS", "DEFAULT_CLIP_TEMPLATES", "DEFAULT_CONTRAST", "DEFAULT_VQA_QUESTION", "NO_WORDS", "YES_WORDS",
           "Judge", "annotate", "check_backend", "check_device", "check_templates", "check_text",
           "check_threshold", "clear_judge_cache", "decide", "load_judge", "read_state_dict", "require",
           "resolve_weights", "summarize"]

_CACHE: dict[tuple, Judge] = {}


def _freeze(value: Any) -> Any:
    """A hashable form of option values (lists of templates, dtypes, ...), for the cache key."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def load_judge(backend: str, model: str | None = None, weights: str | Path | None = None,
               device: str | torch.device = "cpu", search_dirs: Sequence[str | Path] = (), **options) -> Judge:
    """The judge of a backend, built once per (backend, arch, path, device, mtime, options).

    backend "clip": model = open_clip architecture name ("ViT-B-32"), weights =
    a .safetensors file or a torch state-dict checkpoint; options templates, precision, batch_size.
    "vqa": weights = a transformers model folder; options question (with "{concept}"), dtype, batch_size.
    weights relative to one of search_dirs (e.g. ComfyUI's models/pci_judges) or absolute."""
    backend = check_backend(backend)
    device = check_device(device)
    path = resolve_weights(backend, weights, search_dirs)
    arch = model.strip().replace("/", "-") if backend == "clip" and isinstance(model, str) else None  # ViT-B/32
    key = (backend, arch, str(path) if path else None, str(device), _mtime(path), _freeze(options))
    if key not in _CACHE:
        if backend == "clip":
            from .clip import build_clip_judge
            judge: Judge = build_clip_judge(arch, path, device, **options)
        else:
            from .vqa import build_vqa_judge
            judge = build_vqa_judge(path, device, **options)
        _CACHE[key] = judge
    return _CACHE[key]


def clear_judge_cache() -> None:
    _CACHE.clear()
