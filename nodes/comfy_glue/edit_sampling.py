"""Editing in ComfyUI's sampler (BestTimestepEdit). A seed edit is a concept insertion (source prompt
before step k, edit prompt from k on). An input image is VAE-encoded, inverted with the source prompt
to the noise level of step k by ComfyUI's own sampling over the flipped sigmas (euler, no added noise:
the DDIM ODE run backwards, as FlipSigmas unsampling does), then finished over steps k..T with the
edit prompt."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

import comfy.model_management
import comfy.samplers
import comfy.utils
import latent_preview

from ...pci_core import cis, edit_metrics, edit_rules, judges, sweep_plan
from . import edit_plan
from .guider import concept_insertion_sample
from .sampling import Sampling, check_conditionings
from .branching import as_image, decode, decode_and_judge, sweep_latents

INVERSION_SAMPLER = "euler"  # deterministic: the inversion must not add noise


def check_image_for_vae(image: torch.Tensor, vae) -> None:
    """ValueError naming `image` when its size is not a multiple of the VAE's downscale factor, or, for a
    video VAE (Wan: the IMAGE's frames are one clip), its frame count is not one it encodes whole (1 + 4n)."""
    if getattr(vae, "latent_dim", 2) == 3 and (int(image.shape[0]) - 1) % 4:
        n = int(image.shape[0])
        raise ValueError(f"image has {n} frames; this video VAE encodes 1 + 4n frames as one clip (e.g. "
                         f"{n - (n - 1) % 4} or {n - (n - 1) % 4 + 4}): trim or pad the clip first")
    factor = int(vae.spacial_compression_encode())
    h, w = int(image.shape[1]), int(image.shape[2])
    if h % factor or w % factor:
        raise ValueError(f"image is {w}x{h} pixels; this VAE needs width and height that are multiples of {factor} "
                         f"(e.g. {w - w % factor or factor}x{h - h % factor or factor}): crop or scale it first "
                         "(ImageScale, ImageCrop)")


def _guided_run(sampling: Sampling, positive, sigmas: torch.Tensor, latent: torch.Tensor, seed: int) -> torch.Tensor:
    """ComfyUI's CFGGuider over sigmas from latent with no noise added (the latent already sits at sigmas[0])."""
    if len(sigmas) < 2:
        return latent
    guider = comfy.samplers.CFGGuider(sampling.model)
    guider.set_conds(positive, sampling.negative)
    guider.set_cfg(sampling.cfg)
    callback = latent_preview.prepare_callback(sampling.model, len(sigmas) - 1)  # progress, preview, interrupt
    out = guider.sample(torch.zeros_like(latent), latent, comfy.samplers.sampler_object(sampling.sampler_name), sigmas,
                        callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    return out.to(comfy.model_management.intermediate_device())


def _inversion(sampling: Sampling, inversion_cfg: float) -> Sampling:
    return dataclasses.replace(sampling, cfg=inversion_cfg, sampler_name=INVERSION_SAMPLER)


def _sigma_min(sampling: Sampling) -> float:
    return float(sampling.model.get_model_object("model_sampling").sigma_min)


def invert_latent(sampling: Sampling, latent: torch.Tensor, source, inversion_cfg: float, sigmas: torch.Tensor, k: int,
                  seed: int) -> torch.Tensor:
    """The clean latent carried to the noise level sigmas[k] with the source prompt (euler over
    sigmas[k:] flipped). For flow models (CONST) k = 0 is sigma 1, where no inversion exists: use k >= 1."""
    return _guided_run(_inversion(sampling, inversion_cfg), source, edit_rules.inversion_sigmas(sigmas, k, _sigma_min(sampling)),
                       latent, seed)


def edit_image(sampling: Sampling, vae, image: torch.Tensor, source, edit, seed: int, k: int,
               inversion_cfg: float) -> torch.Tensor:
    """An input IMAGE edited: encode, invert to step k with the source prompt, finish k..T with the edit prompt."""
    check_conditionings(source=source, edit=edit, negative=sampling.negative)
    check_image_for_vae(image, vae)
    sigmas = sampling.sigmas()
    noisy = invert_latent(sampling, vae.encode(image[:, :, :, :3]), source, inversion_cfg, sigmas, k, seed)
    comfy.model_management.throw_exception_if_processing_interrupted()
    return as_image(decode(vae, _guided_run(sampling, edit, sigmas[k:], noisy, seed)))


def edit_seed(sampling: Sampling, vae, latent: dict, source, edit, seed: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(edited, source) images of a seed: the concept insertion at k, and the source prompt alone (k = steps)."""
    at = lambda step: concept_insertion_sample(sampling, seed, source, edit, latent, step)["samples"]
    source_latent = at(sampling.steps)
    edited_latent = source_latent if k == sampling.steps else at(k)
    return as_image(decode(vae, edited_latent)), as_image(decode(vae, source_latent))


def probe_edit(sampling: Sampling, vae, judge, latent: dict, source, edit, seeds: list[int], judge_text: str,
               contrast: str | None, progress=None):
    """Every k on the given seeds (run.max_batch resolved), in branching runs of at most about 2 * max_batch
    branches (sweep_plan.branch_runs, each with k = T, the seed's source): judge scores on judge_text (S, K)
    and SSIM of each picture to its seed's source (S, K). Memory holds one run's pictures, not the probe's."""
    ks, T = list(range(sampling.steps + 1)), sampling.steps
    scores, kept = np.zeros((len(seeds), len(ks))), np.zeros((len(seeds), len(ks)))
    for block, chunk in sweep_plan.branch_runs(seeds, ks, sampling.max_batch):
        chunk = chunk if T in chunk else chunk + [T]
        latents, _ = sweep_latents(sampling, source, edit, {"samples": latent["samples"][:1]}, block, chunk, progress)
        pictures = []
        found = decode_and_judge(vae, judge, latents.reshape(-1, *latents.shape[2:]), judge_text, contrast,
                                 sampling.max_batch, keep=lambda start, chunk_pictures: pictures.append(chunk_pictures))
        pictures = torch.cat(pictures).reshape(len(block), len(chunk), *pictures[0].shape[1:])
        for b, seed in enumerate(block):
            row, source_picture = seeds.index(seed), as_image(pictures[b, chunk.index(T)])
            for c, k in enumerate(chunk):
                scores[row, k] = found[b * len(chunk) + c]
                kept[row, k] = float(edit_metrics.ssim(source_picture, as_image(pictures[b, c])).mean())
    return scores, kept


def invert_every_step(sampling: Sampling, latent: torch.Tensor, source, inversion_cfg: float, sigmas: torch.Tensor,
                      seed: int) -> list[torch.Tensor]:
    """The clean latent carried to the noise level of every step with the source prompt: index k holds it at
    sigmas[k] (k = T: the latent itself). One euler step per call over the flipped sigmas, so each level is
    the one invert_latent reaches for that k (T model rows in all)."""
    up = edit_rules.inversion_sigmas(sigmas, 0, _sigma_min(sampling))
    inversion = _inversion(sampling, inversion_cfg)
    levels = [latent]
    for i in range(len(up) - 1):
        comfy.model_management.throw_exception_if_processing_interrupted()
        levels.append(_guided_run(inversion, source, up[i:i + 2], levels[-1], seed))
    return levels[::-1]


def probe_image_edit(sampling: Sampling, vae, judge, image: torch.Tensor, source, edit, seed: int, inversion_cfg: float,
                     judge_text: str, contrast: str | None, progress=None):
    """An input IMAGE edited at every k (inverted once to every level, then steps k..T with the edit prompt for
    each k: T + sum(T - k) model rows): judge scores on judge_text (B, K) and SSIM to the image (B, K); a
    video VAE's input frames are one clip (B = 1, its score by the judge's clip rule, SSIM over its frames)."""
    check_image_for_vae(image, vae)
    pixels = image[:, :, :, :3]
    sigmas = sampling.sigmas()
    levels = invert_every_step(sampling, vae.encode(pixels), source, inversion_cfg, sigmas, seed)
    scores, kept = [], []
    for k in range(sampling.steps + 1):
        comfy.model_management.throw_exception_if_processing_interrupted()
        edited = decode(vae, _guided_run(sampling, edit, sigmas[k:], levels[k], seed))  # images, or one clip
        scores.append(judge.score(edited, judge_text, contrast).double().cpu())
        kept.append(edit_metrics.ssim(pixels.float().cpu(), as_image(edited)).double().reshape(len(edited), -1).mean(1))
        if progress is not None:
            progress(k, sampling.steps)
    return torch.stack(scores, dim=1).numpy(), torch.stack(kept, dim=1).numpy()


def candidates(kind: str, sampling: Sampling, vae, judge, latent: dict, image, source, edit, seed: int, n_probe: int,
               judge_text: str, contrast: str | None, inversion_cfg: float, cis_result=None) -> edit_plan.Candidates:
    """The measurement edit_plan.measurement asked for: the edit itself at every k (THIS_EDIT: the seed's
    branching sweep, or the input image inverted to every level), the probe over helper seeds (PROBE), or
    the CIS curve of a cis_result alone (NOTHING)."""
    ks = list(range(sampling.steps + 1))
    if kind == edit_plan.NOTHING:
        if cis_result is None:
            return edit_plan.Candidates()
        return edit_plan.Candidates(list(cis_result.ks), cis.cis_curve(cis_result.decisions).tolist(), result=cis_result)
    judge_text = judges.check_text(judge_text, "judge_text")
    bar = comfy.utils.ProgressBar(sampling.steps + 1)
    progress = lambda step, *_: bar.update_absolute(step + 1)
    sampling = sampling.for_latent(latent)
    if kind == edit_plan.THIS_EDIT:
        if image is None:
            scores, kept = probe_edit(sampling, vae, judge, latent, source, edit, [seed], judge_text, contrast, progress)
        else:
            scores, kept = probe_image_edit(sampling, vae, judge, image, source, edit, seed, inversion_cfg, judge_text,
                                            contrast, progress)
        return edit_plan.Candidates(ks, scores.mean(axis=0).tolist(), kept.mean(axis=0).tolist(),
                                  scores >= edit_rules.JUDGE_THRESHOLD, cis_result)
    seeds = edit_plan.probe_seeds(seed, n_probe)
    scores, kept = probe_edit(sampling, vae, judge, latent, source, edit, seeds, judge_text, contrast, progress)
    probe = cis.CISResult(seeds, ks, sampling.steps, sampling.step_sigmas(), scores, edit_rules.JUDGE_THRESHOLD, judge_text,
                          {"sampler": sampling.sampler_name, "scheduler": sampling.scheduler, "cfg": float(sampling.cfg)})
    success, preservation = edit_rules.probe_curves(scores, kept)
    return edit_plan.Candidates(ks, success.tolist(), preservation.tolist(), None,
                              cis_result if cis_result is not None else probe)
