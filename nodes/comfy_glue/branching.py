"""The CIS sweep inside ComfyUI's sampler: every (seed, k) branch of a block of seeds in ONE sampler
run, each bit-identical to ConceptInsertionSampler with that seed and k (latent batch 1), then decoded
and judged; measure() hands that to pci_core.runner as its measure(seeds, ks)."""
from __future__ import annotations

import inspect

import numpy as np
import torch

import comfy.model_management
import comfy.model_patcher
import comfy.sample
import comfy.samplers
from comfy.k_diffusion import sampling as kds

from ...pci_core import insertion, schedule, sweep_plan
from . import internals
from .guider import ConceptInsertionGuider, concept_insertion_sample
from .sampling import Sampling, check_conditionings

# Every (seed, k) branch of a block of seeds in ONE sampler run, each bit-identical to
# ConceptInsertionSampler with that seed and k (latent batch 1): the initial noise is each seed's
# own prepare_noise, ancestral/SDE samplers get each seed's own noise stream, and _cfg_pp samplers'
# post-CFG hooks see the whole batch's unconditioned prediction.

# ComfyUI samplers whose default noise is a Brownian tree (cpu flag as the sampler builds it).
BROWNIAN_SAMPLERS = {"dpmpp_sde": True, "dpmpp_2m_sde": True, "dpmpp_2m_sde_heun": True, "dpmpp_3m_sde": True,
                     "dpmpp_sde_gpu": False, "dpmpp_2m_sde_gpu": False, "dpmpp_2m_sde_heun_gpu": False,
                     "dpmpp_3m_sde_gpu": False}
# Checked bit-identical in one batched run (ComfyUI v0.3.64's samplers less dpm_adaptive, whose step-size
# control reads the error of the whole batch). Any other sampler runs one batch-1 run per branch: exact, slower.
BATCH_EXACT_SAMPLERS = frozenset({
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2", "dpm_2_ancestral",
    "lms", "dpm_fast", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m",
    "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep",
    "res_multistep_cfg_pp", "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc",
    "uni_pc_bh2"})


class PerSeedNoiseSampler(comfy.samplers.KSAMPLER):
    """A ComfyUI sampler whose random draws come per seed: row block i (repeats rows) gets the stream a
    batch-1 run of seeds[i] draws (default_noise_sampler or a Brownian tree, as the sampler would build it)."""

    def __init__(self, sampler: comfy.samplers.KSAMPLER, sampler_name: str, seeds: list[int], repeats: int):
        super().__init__(sampler.sampler_function, dict(sampler.extra_options), sampler.inpaint_options)
        self.sampler_name, self.seeds, self.repeats = sampler_name, list(seeds), repeats

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        if "noise_sampler" in inspect.signature(self.sampler_function).parameters:
            row = noise[:1]  # shape, dtype and device of a batch-1 run's x
            if self.sampler_name in BROWNIAN_SAMPLERS:
                lo, hi = sigmas[sigmas > 0].min(), sigmas.max()
                streams = [kds.BrownianTreeNoiseSampler(row, lo, hi, seed=s, cpu=BROWNIAN_SAMPLERS[self.sampler_name])
                           for s in self.seeds]
            else:
                streams = [kds.default_noise_sampler(row, seed=s) for s in self.seeds]
            repeats = self.repeats
            self.extra_options = dict(self.extra_options, noise_sampler=lambda sigma, sigma_next: torch.cat(
                [stream(sigma, sigma_next) for stream in streams]).repeat_interleave(repeats, dim=0))
        return super().sample(model_wrap, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)


class SweepGuider(ConceptInsertionGuider):
    """ConceptInsertionGuider for mixed batches. A post-CFG hook that a sampler adds (the _cfg_pp
    samplers read the unconditioned prediction through one) runs once per sampling_function call, and
    the branching denoiser makes one call per conditioning and chunk: the hook would keep the last
    sub-batch's rows only. Here every sub-batch returns its cfg result together with its cond and uncond
    predictions (stacked on the channel axis, so the branching denoiser broadcasts them like x0), and
    the sampler's hooks then run once on the whole batch, as in a batch-1 run of each branch."""

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        own = len(self.model_options.get("sampler_post_cfg_function", []))  # the model's own hooks: row-wise
        sampler_hooks = model_options.get("sampler_post_cfg_function", [])[own:]
        if not sampler_hooks:
            return super().predict_noise(x, timestep, model_options, seed)
        comfy.model_management.throw_exception_if_processing_interrupted()
        c = x.shape[1]
        if self._branching is None:
            def denoise_with(rows, rows_sigma, use_concept):
                seen = {}

                def keep(args):
                    seen["cond"], seen["uncond"] = args["cond_denoised"], args["uncond_denoised"]
                    return args["denoised"]
                options = comfy.model_patcher.set_model_options_post_cfg_function(dict(model_options), keep)
                positive = self.conds.get("concept" if use_concept else "positive")
                x0 = comfy.samplers.sampling_function(self.inner_model, rows[:, :c], rows_sigma, self.conds.get("negative"),
                                                      positive, self.cfg, model_options=options, seed=seed)
                uncond = seen["uncond"] if seen["uncond"] is not None else torch.zeros_like(x0)  # cfg 1: none made
                return torch.cat([x0, seen["cond"], uncond], dim=1)
            self._branching = insertion.branching_denoiser(denoise_with, self.boundaries, self.lineage,
                                                           self.max_batch, self.counter)
        stacked = self._branching(torch.cat([x, x, x], dim=1), timestep)
        x0, cond, uncond = stacked[:, :c], stacked[:, c:2 * c], stacked[:, 2 * c:]
        for hook in sampler_hooks:  # they only record; x0 already went through the whole chain per sub-batch
            hook({"denoised": x0, "cond": None, "uncond": None, "cond_scale": self.cfg, "model": self.inner_model,
                  "uncond_denoised": uncond, "cond_denoised": cond, "sigma": timestep, "model_options": model_options,
                  "input": x})
        return x0


def sweep_latents(sampling: Sampling, base, concept, latent: dict, seeds: list[int], ks: list[int], progress=None):
    """Final latents (S, K, C, h, w) of every (seed, k) branch, on the intermediate device, and the sigmas
    (steps + 1,) on the CPU: one sampler run, each branch bit-identical to ConceptInsertionSampler with that
    seed and k. progress(step, x0) is called after every sampler step with the predicted x0 of every row."""
    check_conditionings(base=base, concept=concept, negative=sampling.negative)
    sweep_plan.check_max_batch(sampling.max_batch)  # Sampling.for_latent resolves 0 (auto)
    latent_image = internals.empty_latent(sampling.model, latent)
    if latent_image.shape[0] != 1:
        raise ValueError(f"latent: a batch of {latent_image.shape[0]}; a CIS sweep makes one image per seed and "
                         "(seed, k): give a latent of batch 1 (EmptyLatentImage batch_size 1) and set the seeds")
    if latent.get("noise_mask") is not None:
        raise ValueError("latent: has a noise mask; a CIS sweep does not inpaint (remove SetLatentNoiseMask)")
    sigmas = sampling.sigmas()
    if sampling.sampler_name not in BATCH_EXACT_SAMPLERS:
        return _sweep_per_branch(sampling, base, concept, latent, seeds, ks, progress), sigmas
    S, K = len(seeds), len(ks)
    last = len(sigmas) - 1  # base only (k = steps) even where the scheduler runs an extra step
    boundaries = torch.tensor([schedule.insertion_boundary(sigmas, last if k == sampling.steps else k) for k in ks],
                              dtype=torch.float64).repeat(S)
    lineage = torch.arange(S).repeat_interleave(K)
    noise = torch.cat([comfy.sample.prepare_noise(latent_image, s, latent.get("batch_index")) for s in seeds])
    sampler = PerSeedNoiseSampler(comfy.samplers.sampler_object(sampling.sampler_name), sampling.sampler_name, seeds, K)
    guider = SweepGuider(sampling.model, base, concept, sampling.negative, sampling.cfg, boundaries, lineage, sampling.max_batch)
    callback = None if progress is None else (lambda step, x0, x, total: progress(step, x0))
    samples = guider.sample(noise.repeat_interleave(K, dim=0), latent_image.repeat(S * K, *[1] * (latent_image.ndim - 1)),
                            sampler, sigmas, callback=callback, disable_pbar=True, seed=seeds[0])
    samples = samples.to(comfy.model_management.intermediate_device())
    return samples.reshape(S, K, *samples.shape[1:]), sigmas


def _sweep_per_branch(sampling: Sampling, base, concept, latent, seeds, ks, progress):
    """The fallback for samplers not known to be batch-exact: one batch-1 ConceptInsertionSampler run per
    branch (progress reports the branch's steps)."""
    rows = []
    for seed in seeds:
        for k in ks:
            out = concept_insertion_sample(sampling, seed, base, concept, latent, k)["samples"]
            rows.append(out)
            if progress is not None:
                progress(len(rows) * sampling.steps // (len(seeds) * len(ks)) - 1, out)
    out = torch.cat(rows)
    return out.reshape(len(seeds), len(ks), *out.shape[1:])


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Pictures of latents, float on the CPU: IMAGE (N, H, W, 3), or for a video VAE's 5-D latents one clip
    per latent, (N, F, H, W, 3) (VAEDecode would flatten the frames of every clip into one batch)."""
    pictures = vae.decode(latents).float().cpu()
    return pictures[:, 0] if pictures.ndim == 5 and pictures.shape[1] == 1 else pictures  # one frame: an image


def as_image(pictures: torch.Tensor) -> torch.Tensor:
    """Pictures as a ComfyUI IMAGE: clips (N, F, H, W, 3) become their frames, as VAEDecode gives them."""
    return pictures.reshape(-1, *pictures.shape[-3:]) if pictures.ndim == 5 else pictures


def decode_and_judge(vae, judge, latents: torch.Tensor, text: str, contrast: str | None, max_batch: int,
                     progress=None, keep=None) -> np.ndarray:
    """Judge scores (N,) of latents (N, ...), decoded and judged max_batch at a time (a clip is one trial:
    the judge's clip rule makes its score from its frames); keep(start, pictures) sees each chunk (images
    (n, H, W, 3) or clips (n, F, H, W, 3)) and keeps what it needs; progress(done, total) after each chunk."""
    scores = []
    n, step = latents.shape[0], clips_per_chunk(vae, latents, max_batch)
    for start in range(0, n, step):
        comfy.model_management.throw_exception_if_processing_interrupted()
        chunk = decode(vae, latents[start:start + step])
        scores.append(judge.score(chunk, text, contrast).numpy())
        if keep is not None:
            keep(start, chunk)
        if progress is not None:
            progress(min(start + step, n), n)
    return np.concatenate(scores).astype(np.float64)


def clips_per_chunk(vae, latents: torch.Tensor, max_batch: int) -> int:
    """Latents decoded at once: max_batch pictures, a clip counting its frames (a video VAE's temporal
    upscale of the latent frames: Wan's 4 (T - 1) + 1), so a decode chunk holds about max_batch frames."""
    if latents.ndim != 5 or latents.shape[2] <= 1:
        return max_batch
    upscale = getattr(vae, "upscale_ratio", None)
    frames = upscale[0](latents.shape[2]) if isinstance(upscale, tuple) and callable(upscale[0]) else latents.shape[2]
    return max(1, max_batch // max(1, int(frames)))


def measure(sampling: Sampling, base, concept, latent: dict, vae, judge, text: str, contrast: str | None,
            sampling_progress=None, judging_progress=None, keep_picture=None):
    """pci_core.runner's measure(seeds, ks) -> scores (S, K): branching sampler runs over the seeds and ks
    (sweep_plan.branch_runs: at most about 2 * max_batch branches a run, whatever the seeds and steps),
    decoded and judged on text. keep_picture(seed, k, picture) sees every picture and keeps what it needs:
    memory holds one run's latents and one decode chunk, not the sweep's pictures."""
    def scores_of(seeds: list, ks: list) -> np.ndarray:
        scores = np.zeros((len(seeds), len(ks)))
        for block, chunk in sweep_plan.branch_runs(seeds, ks, sampling.max_batch):
            latents, _ = sweep_latents(sampling, base, concept, latent, block, chunk, sampling_progress)

            def keep(start, pictures, block=block, chunk=chunk):
                for i, picture in enumerate(pictures, start):
                    keep_picture(block[i // len(chunk)], chunk[i % len(chunk)], picture)
            found = decode_and_judge(vae, judge, latents.reshape(-1, *latents.shape[2:]), text, contrast,
                                     sampling.max_batch, judging_progress, keep if keep_picture else None)
            rows, cols = [seeds.index(s) for s in block], [ks.index(k) for k in chunk]
            scores[np.ix_(rows, cols)] = found.reshape(len(block), len(chunk))
        return scores
    return scores_of
