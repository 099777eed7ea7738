"""What identifies a run and where its files go: labels of conditionings and models (the prompt text
does not reach a node, the tensors do), a sweep's settings for its results header, and run folders
under ComfyUI's output folder (one run-name rule for every node)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

import folder_paths

from ...pci_core import results


def _sha1(tensors) -> str:
    digest = hashlib.sha1()
    for t in tensors:
        t = t.detach().float().cpu().contiguous()
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def conditioning_label(cond) -> str:
    """A label of a conditioning's content (the prompt text does not reach a node, the tensors do)."""
    tensors = [c[0] for c in cond] + [c[1]["pooled_output"] for c in cond if c[1].get("pooled_output") is not None]
    options = sorted({k for c in cond for k in c[1] if k != "pooled_output"})
    return f"sha1 {_sha1(tensors)} of {len(cond)} cond(s) {[tuple(c[0].shape) for c in cond]}" + \
        (f" with {options}" if options else "")


def model_label(model_patcher) -> str:
    """The model's class and a fingerprint of a sample of its weights and of its patches (LoRAs), cheap
    enough for a checkpoint of billions of weights."""
    params = list(model_patcher.model.state_dict().values())
    picks = [params[i].reshape(-1)[:4096] for i in sorted({0, len(params) // 2, len(params) - 1})] if params else []
    patches = sorted(f"{k}:{[p[0] for p in v]}" for k, v in model_patcher.patches.items())
    return (f"{type(model_patcher.model.model_config).__name__}, {sum(p.numel() for p in params)} weights, "
            f"sha1 {_sha1(picks)}" + (f", {len(patches)} patched weights sha1 "
                                       f"{hashlib.sha1(str(patches).encode()).hexdigest()[:16]}" if patches else ""))


def sweep_settings(sampling, base, concept, latent: dict, judge: str) -> dict:
    """What identifies a sweep's images besides the seeds (results.SETTINGS_KEYS); run: a Sampling."""
    samples = latent["samples"]
    return {"model": model_label(sampling.model), "sampler": sampling.sampler_name, "scheduler": sampling.scheduler,
            "cfg": float(sampling.cfg), "base_prompt": conditioning_label(base), "concept_prompt": conditioning_label(concept),
            "negative_prompt": conditioning_label(sampling.negative), "judge": judge,
            "latent_size": [int(samples.shape[-2]), int(samples.shape[-1])],
            "latent": "empty" if not torch.count_nonzero(samples) else f"sha1 {_sha1([samples])}"}


def judge_label(judge, contrast: str | None, latent: dict) -> str:
    """The judge as a run's settings name it; for clips (a video latent of several frames) with its clip rule."""
    samples = latent["samples"]
    clips = samples.ndim == 5 and samples.shape[2] > 1
    return f"{judge.describe()}; contrast {contrast!r}" + (f"; clips: {judge.clip_rule_text()}" if clips else "")


def run_folder(run_name) -> Path:
    """output/pci/<run name>/: a run's (or a study's) folder; ValueError naming run_name unless it is one
    folder name (results.check_run_name: no separators, no '..', not absolute)."""
    return Path(folder_paths.get_output_directory()) / "pci" / results.check_run_name(run_name)


def files_fingerprint(run_name, file_name: str):
    """A node's fingerprint_inputs from a run file's change time and size (None when absent or the name is
    not valid: the node's execute then names the error), so ComfyUI re-runs the node when its files changed
    (deleted, extended by another shard) instead of handing back cached outputs."""
    try:
        path = run_folder(run_name) / file_name
    except ValueError:
        return None
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


def image_batch(image) -> torch.Tensor:
    """An (H, W, 3) float array in [0, 1] as a ComfyUI IMAGE batch of one."""
    return torch.from_numpy(image).float().unsqueeze(0)
