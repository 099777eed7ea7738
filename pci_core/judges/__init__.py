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
  P(yes) from the next-token logits of the answer tokens "yes" and "no", not a parsed string; or, protocol
  "official", the paper's judge exactly: A/B multiple choice, one greedy token, a binary decision.

A judge's network (JudgeModel) is loaded once per weights file, device and dtype and shared by every judge
made over it (load_model); templates and questions are the judge's. A host that manages memory moves the
network through its `placement` hook (the pack's ComfyUI glue puts it under comfy.model_management).

Weights come only from local files; nothing here downloads. A missing file is a FileNotFoundError that names
the file and the folder looked in. open_clip and transformers are imported only inside their backends.

The demo world's exact pixel judge (backend "rule", pci_core.demo.rule_judge) implements the same interface; it
lives with the demo world, which the engine never imports.

Modules: base (interface, checks, summaries), clip, vqa (one backend each), weights (local files).
"""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, Sequence

import torch

from .base import (BACKENDS, CLIP_RULES, DEFAULT_CLIP_FRAMES, DEFAULT_CLIP_TEMPLATES, DEFAULT_CONTRAST,
                   DEFAULT_VQA_QUESTION, NO_WORDS, YES_WORDS, Judge, JudgeModel, annotate, check_backend,
                   check_clip_rule, check_device, check_templates, check_text, check_threshold, combine_frames, decide,
                   frame_indices, require, summarize)
from .weights import _mtime, read_state_dict, resolve_weights

__all__ = ["BACKENDS", "CLIP_RULES", "DEFAULT_CLIP_FRAMES", "DEFAULT_CLIP_TEMPLATES", "DEFAULT_CONTRAST", "DEFAULT_VQA_QUESTION", "NO_WORDS", "YES_WORDS",
           "Judge", "JudgeModel", "annotate", "check_backend", "check_clip_rule", "check_device", "check_templates",
           "check_text", "check_threshold", "clear_judge_cache", "combine_frames", "decide", "frame_indices", "load_judge", "load_model", "read_state_dict", "require",
           "resolve_weights", "summarize"]

# Weakly held: a network lives while a judge over it does (a node's cached output, a test's fixture), and
# one (backend, weights, device, dtype) never loads twice meanwhile, whatever the templates or question.
_MODELS: "weakref.WeakValueDictionary[tuple, JudgeModel]" = weakref.WeakValueDictionary()
_JUDGES: "weakref.WeakValueDictionary[tuple, Judge]" = weakref.WeakValueDictionary()


def _freeze(value: Any) -> Any:
    """A hashable form of option values (lists of templates, dtypes, ...), for the cache key."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def load_model(backend: str, model: str | None = None, weights: str | Path | None = None,
               device: str | torch.device = "cpu", search_dirs: Sequence[str | Path] = (),
               dtype: torch.dtype | str | None = None, offload: str | torch.device | None = None) -> JudgeModel:
    """A judge's network, loaded once per (backend, architecture, weights, their change time, device, dtype,
    offload). With offload it stays on that device until a host places it on `device`.

    "clip": model = open_clip architecture name ("ViT-B-32"; empty for a folder as open_clip publishes it,
    with open_clip_config.json), weights = a .safetensors file or a state-dict checkpoint, or that folder;
    dtype default float32. "vqa": weights = a transformers model folder (e.g. Qwen2.5-VL-3B-Instruct as
    published); dtype default float32 on the CPU, the checkpoint's elsewhere. weights relative to one of
    search_dirs (e.g. ComfyUI's models/pci_judges) or absolute."""
    backend = check_backend(backend)
    device = check_device(device)
    path = resolve_weights(backend, weights, search_dirs)
    arch = model.strip().replace("/", "-") if backend == "clip" and isinstance(model, str) else None  # ViT-B/32
    if backend == "clip":
        from .clip import published_layout
        path = (published_layout(path) or (path,))[0]  # a file of a published folder is that folder
    offload = None if offload is None else check_device(offload)
    key = (backend, arch, str(path), _mtime(path), str(device), _freeze(dtype), str(offload))
    net = _MODELS.get(key)
    if net is None:
        if backend == "clip":
            from .clip import load_clip_model
            net = load_clip_model(arch, path, device, dtype or torch.float32, offload)
        else:
            from .vqa import load_vqa_model
            net = load_vqa_model(path, device, dtype, offload)
        _MODELS[key] = net
    return net


def load_judge(backend: str, model: str | None = None, weights: str | Path | None = None,
               device: str | torch.device = "cpu", search_dirs: Sequence[str | Path] = (),
               dtype: torch.dtype | str | None = None, offload: str | torch.device | None = None, **options) -> Judge:
    """A judge over load_model's network (shared), with its own options: "clip" templates, batch_size;
    "vqa" question (with "{concept}"), protocol ("p(yes)" or "official"), batch_size; any backend clip_rule,
    clip_frames (how a clip's frames make its verdict). The same arguments return the same judge while it
    is held."""
    clip = check_clip_rule(options.pop("clip_rule", "mean"), options.pop("clip_frames", DEFAULT_CLIP_FRAMES))
    net = load_model(backend, model, weights, device, search_dirs, dtype, offload)
    key = (id(net), _freeze(options), clip)
    judge = _JUDGES.get(key)
    if judge is None or judge.net is not net:
        if backend.strip().lower() == "clip":
            from .clip import ClipJudge
            judge = ClipJudge(net, **options)
        else:
            from .vqa import VqaJudge
            judge = VqaJudge(net, **options)
        _JUDGES[key] = judge.set_clip_rule(*clip)
    return judge


def clear_judge_cache() -> None:
    """Forget every network and judge (each is freed once nothing else holds it)."""
    _MODELS.clear()
    _JUDGES.clear()
