"""All glue between pci_core and ComfyUI lives here; node files call these functions.

- the demo model as native MODEL (BaseModel + ModelPatcher), CLIP (comfy.sd.CLIP) and VAE;
- the concept-insertion guider: ComfyUI's own CFG sampling function, with the positive
  conditioning chosen per row by pci_core's branching denoiser.
"""
from __future__ import annotations

import hashlib
import logging
import math
import numbers
import os
from pathlib import Path

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.samplers
import comfy.sd
import comfy.supported_models_base
import folder_paths

from ..pci_core import editing, insertion, schedule
from ..pci_core.demo import demo_model, world

# ---------------------------------------------------------------- demo model as MODEL / CLIP / VAE

DEMO_FOLDER = "pci_demo"
folder_paths.add_model_folder_path(DEMO_FOLDER, os.path.join(folder_paths.models_dir, DEMO_FOLDER))


class DemoLatentFormat(comfy.latent_formats.LatentFormat):
    scale_factor = 1.0  # the autoencoder already scales its latents to unit variance
    latent_channels = 4


class DemoModelConfig(comfy.supported_models_base.BASE):
    unet_config = dict(demo_model.UNET_CONFIG)
    unet_extra_config = {}  # BASE would add num_heads=-1 for SD-style UNets
    latent_format = DemoLatentFormat
    # As SD1.5: ComfyUI picks half precision where the device runs it well, and --fp16-unet /
    # --bf16-unet / --fp32-unet choose (model_management.unet_dtype).
    supported_inference_dtypes = [torch.float16, torch.bfloat16, torch.float32]
    memory_usage_factor = 1.0


class DemoTokenizer:
    """Word tokenizer in the duck interface of comfy/sd1_clip.py (what CLIPTextEncode calls).

    Prompt weights such as "(red:1.2)" are parsed by ComfyUI's own parser (comfy.sd1_clip.token_weights)
    and honoured by the encoder as SD1's CLIP does; the tokens are a bag of words, so a weight is per word."""

    def __init__(self, embedding_directory=None, tokenizer_data={}):
        pass

    def tokenize_with_weights(self, text: str, return_word_ids=False, **kwargs):
        import comfy.sd1_clip as sd1
        weights = []
        for segment, weight in sd1.token_weights(sd1.escape_important(text), 1.0):
            weights += [weight] * len(world.words_of(sd1.unescape_important(segment)))
        ids = demo_model.tokenize(text)  # ValueError names unknown words or too many
        return {"ids": ids, "weights": weights + [1.0] * (len(ids) - len(weights))}

    def untokenize(self, token_weight_pair):
        return token_weight_pair

    def state_dict(self):
        return {}


class DemoTextEncoder(torch.nn.Module):
    """The demo text encoder behind comfy.sd.CLIP: encode_token_weights -> (cond, pooled)."""

    def __init__(self, device=None, dtype=None, model_options={}, **kwargs):
        super().__init__()
        # No autograd: encoding runs inside and outside ComfyUI's inference mode alike (as the UNet, eval + frozen).
        self.encoder = demo_model.TextEncoder(**demo_model.TEXT_CONFIG).to(device=device).eval().requires_grad_(False)
        self.dtypes = {torch.float32}

        self.layer = None  # CLIPSetLastLayer's stop_at_clip_layer; None = the last layer

    def encode_token_weights(self, tokens):
        device = self.encoder.embed.weight.device
        cond = self._encode(torch.tensor([tokens["ids"]], dtype=torch.long, device=device))
        pooled = cond.mean(dim=1)
        weights = torch.tensor(tokens.get("weights", [1.0] * len(tokens["ids"])), dtype=cond.dtype, device=device)
        if (weights != 1.0).any():  # as comfy.sd1_clip: move each weighted token from the empty prompt's
            empty = self._encode(torch.full_like(torch.tensor([tokens["ids"]], device=device), demo_model.PAD))
            cond = (cond - empty) * weights[None, :, None] + empty
        return cond, pooled

    def _encode(self, ids: torch.Tensor) -> torch.Tensor:
        """The encoder's output, stopped after block `self.layer` (-1 = last) and then normed, as SD1's
        CLIP normalises a hidden layer's state."""
        blocks = self.encoder.blocks
        stop = len(blocks) if self.layer is None else len(blocks) + 1 + self.layer
        x = self.encoder.embed(ids)
        for block in blocks[:stop]:
            x = block(x)
        return self.encoder.norm(x)

    def set_clip_options(self, options):
        layer = options.get("layer")
        if layer is None:
            return
        blocks = len(self.encoder.blocks)
        if not -blocks <= layer <= -1:  # ComfyUI's SD1 CLIP uses the last layer then too, but silently
            logging.warning(f"PCI demo CLIP: stop_at_clip_layer={layer} is beyond its {blocks} layers "
                            f"(valid -{blocks}..-1); using the last layer")
            layer = -1
        self.layer = layer

    def reset_clip_options(self):
        self.layer = None

    def load_sd(self, sd):
        return self.encoder.load_state_dict(sd)


def demo_unet_dtype(load_device) -> torch.dtype:
    """The dtype the demo UNet computes in, chosen as ComfyUI's checkpoint loaders choose (the user's
    --fp16-unet etc. first, then what the device runs well). Where ComfyUI would store one dtype and
    cast to another per layer (manual cast), the demo UNet, built from plain torch layers, holds its
    weights in the compute dtype: the same numbers, as weight casts round the same way."""
    params = sum(v.numel() for v in demo_model.DemoUNet(**demo_model.UNET_CONFIG, device="meta").state_dict().values())
    supported = DemoModelConfig.supported_inference_dtypes
    weight_dtype = comfy.model_management.unet_dtype(model_params=params, supported_dtypes=supported)
    return comfy.model_management.unet_manual_cast(weight_dtype, load_device, supported) or weight_dtype


def _model_patcher(model: demo_model.DemoModel, dtype: torch.dtype) -> comfy.model_patcher.ModelPatcher:
    config = DemoModelConfig(demo_model.UNET_CONFIG)
    config.set_inference_dtype(dtype, None)  # BaseModel builds the UNet in this dtype; load_state_dict casts
    config.latent_format.latent_rgb_factors, config.latent_format.latent_rgb_factors_bias = \
        demo_model.latent_rgb_factors(model)  # live previews while sampling
    base = comfy.model_base.BaseModel(config, comfy.model_base.ModelType.EPS, unet_model=demo_model.DemoUNet)
    base.diffusion_model.load_state_dict(model.unet.state_dict())
    base.eval().requires_grad_(False)
    return comfy.model_patcher.ModelPatcher(base, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


def _clip(model: demo_model.DemoModel) -> comfy.sd.CLIP:
    target = comfy.supported_models_base.ClipTarget(DemoTokenizer, DemoTextEncoder)
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32})
    clip.load_sd(model.text_encoder.state_dict())
    return clip


def _vae(model: demo_model.DemoModel) -> comfy.sd.VAE:
    # The pixel-space path of comfy.sd.VAE sets every attribute a VAE has; the first-stage model
    # is then our autoencoder (encode: [-1,1] RGB -> latent, decode: latent -> [-1,1] RGB).
    vae = comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})
    ae = model.autoencoder.float().eval()
    vae.first_stage_model = ae
    vae.downscale_ratio = vae.upscale_ratio = ae.downscale
    vae.latent_channels = ae.latent_channels
    vae.working_dtypes = [torch.float32]
    vae.vae_dtype = torch.float32
    vae.memory_used_encode = lambda shape, dtype: 64 * 1024 * shape[2] * shape[3]
    vae.memory_used_decode = lambda shape, dtype: 64 * 1024 * shape[2] * shape[3] * 64
    vae.patcher = comfy.model_patcher.ModelPatcher(ae, load_device=vae.device,
                                                   offload_device=comfy.model_management.vae_offload_device())
    return vae


_LOADED: dict[tuple, tuple] = {}


def demo_weights_choices() -> list[str]:
    """The shipped weights first, then any file in the models/pci_demo folder."""
    return [demo_model.WEIGHTS_FILE] + [f for f in folder_paths.get_filename_list(DEMO_FOLDER)
                                        if f != demo_model.WEIGHTS_FILE]


def load_demo(weights: str = demo_model.WEIGHTS_FILE, dtype: torch.dtype | None = None):
    """(MODEL, CLIP, VAE) of the demo model; built once per weights file and UNet dtype (None: as
    ComfyUI would choose for a checkpoint, see demo_unet_dtype)."""
    path = folder_paths.get_full_path(DEMO_FOLDER, weights)
    if path is None:
        if weights != demo_model.WEIGHTS_FILE:
            raise FileNotFoundError(f"weights {weights!r} not found in folder "
                                    f"{folder_paths.get_folder_paths(DEMO_FOLDER)}")
        path = demo_model.DEFAULT_WEIGHTS
    dtype = dtype or demo_unet_dtype(comfy.model_management.get_torch_device())
    key = (str(path), Path(path).stat().st_mtime if Path(path).exists() else None, dtype)
    if key not in _LOADED:
        model = demo_model.load(path)
        _LOADED.clear()
        _LOADED[key] = (_model_patcher(model, dtype), _clip(model), _vae(model))
    return _LOADED[key]


# ---------------------------------------------------------------- concept insertion in ComfyUI's sampler

class ConceptInsertionGuider(comfy.samplers.CFGGuider):
    """CFG guider whose positive conditioning switches from base to concept by sigma.

    Each model evaluation goes through ComfyUI's sampling_function (CFG, area conds, ControlNet,
    model patches), once for the rows still on the base and once for the rows on the concept."""

    def __init__(self, model_patcher, base, concept, negative, cfg: float, boundaries: torch.Tensor,
                 lineage: torch.Tensor, max_batch: int | None = None, counter: insertion.EvalCounter | None = None):
        super().__init__(model_patcher)
        self.inner_set_conds({"positive": base, "concept": concept, "negative": negative})
        self.set_cfg(cfg)
        self.boundaries, self.lineage, self.max_batch, self.counter = boundaries, lineage, max_batch, counter

    def sample(self, *args, **kwargs):
        self._branching = None  # lineage restarts with every run
        return super().sample(*args, **kwargs)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if self._branching is None:
            def denoise_with(rows_x, rows_sigma, use_concept):
                positive = self.conds.get("concept" if use_concept else "positive")
                return comfy.samplers.sampling_function(self.inner_model, rows_x, rows_sigma, self.conds.get("negative"),
                                                        positive, self.cfg, model_options=model_options, seed=seed)
            self._branching = insertion.branching_denoiser(denoise_with, self.boundaries, self.lineage,
                                                           self.max_batch, self.counter)
        return self._branching(x, timestep)


def sampler_sigmas(model_patcher, steps: int, sampler_name: str, scheduler: str, denoise: float) -> torch.Tensor:
    """The exact sigmas KSampler would use (denoise and penultimate-sigma rules included)."""
    ks = comfy.samplers.KSampler(model_patcher, steps=steps, device=model_patcher.load_device, sampler=sampler_name,
                                 scheduler=scheduler, denoise=denoise, model_options=model_patcher.model_options)
    return ks.sigmas.cpu()


def check_conditionings(**conds) -> None:
    """Each conditioning non-empty, and all of one text width (the same text encoder made them)."""
    widths = {}
    for name, cond in conds.items():
        if not cond:
            raise ValueError(f"{name} conditioning is empty: connect a CLIPTextEncode (or other conditioning) output")
        widths[name] = {tuple(c[0].shape[2:]) for c in cond}
    if len({w for ws in widths.values() for w in ws}) > 1:
        raise ValueError("base, concept and negative conditioning come from different text encoders "
                         f"(token widths {widths}); encode all three with the same CLIP")


def check_insert_step(insert_step):
    """insert_step as a finite number (an API prompt can send null, a string or NaN); ValueError naming it."""
    if isinstance(insert_step, bool) or not isinstance(insert_step, numbers.Real) or not math.isfinite(insert_step):
        raise ValueError(f"insert_step={insert_step!r}: expected a number, a step in [0, steps] "
                         f"(0 = concept from the start, steps = base only) or a fraction of the steps in (0, 1)")
    return insert_step


def concept_insertion_sample(model_patcher, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                             base, concept, negative, latent: dict, insert_step: int, denoise: float = 1.0) -> dict:
    """KSampler with the positive prompt switched from base to concept at insert_step.

    As KSampler: a latent batch of B draws its noise from the one seed (row i is not seed + i), and
    with denoise < 1 the steps (and insert_step) count the steps actually run."""
    import comfy.sample
    import comfy.utils
    import latent_preview

    check_conditionings(base=base, concept=concept, negative=negative)
    k = insertion.resolve_insert_step(check_insert_step(insert_step), steps)
    latent_image = comfy.sample.fix_empty_latent_channels(model_patcher, latent["samples"])
    sigmas = sampler_sigmas(model_patcher, steps, sampler_name, scheduler, denoise)
    if len(sigmas) == 0:  # denoise 0: as KSampler, the latent comes back unchanged
        out = latent.copy()
        out["samples"] = latent_image.to(comfy.model_management.intermediate_device())
        return out
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    if k == steps:  # base only, even where the scheduler runs an extra step (ddim_uniform does)
        k = len(sigmas) - 1
    batch = latent_image.shape[0]
    # The switch is decided on the host (see insertion.branching_denoiser): boundaries and lineage on the CPU.
    boundaries = torch.full((batch,), schedule.insertion_boundary(sigmas, k), dtype=torch.float64, device="cpu")
    guider = ConceptInsertionGuider(model_patcher, base, concept, negative, cfg, boundaries,
                                    torch.arange(batch, device="cpu"))
    callback = latent_preview.prepare_callback(model_patcher, len(sigmas) - 1)
    samples = guider.sample(noise, latent_image, comfy.samplers.sampler_object(sampler_name), sigmas,
                            denoise_mask=latent.get("noise_mask"), callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    out = latent.copy()
    out["samples"] = samples.to(comfy.model_management.intermediate_device())
    return out


# ---------------------------------------------------------------- device policy
# Rows per model call in a branching run. Throughput grows with the batch until the device is busy
# (issue 9's measurement on an H100, SD1.5 fp16 512 px: 32 and 64 rows equally fast, unbounded
# batches 2x slower, as every step brings a new batch shape), so: the largest power of two up to
# MAX_BATCH_CAP whose cond + uncond batch fits in half of the memory free after the model is
# loaded (ComfyUI's own per-model estimate, BaseModel.memory_required). Powers of two keep the
# chunk shapes few and steady.
MAX_BATCH_CAP = 64


def max_batch_for_device(model_patcher, latent_shape) -> int:
    """Default max_batch for a sweep of latents of `latent_shape` (C, h, w) on this model's device."""
    free = comfy.model_management.get_free_memory(model_patcher.load_device)
    unloaded = model_patcher.model_size() - model_patcher.loaded_size()  # weights still to come onto the device
    budget = 0.5 * (free - unloaded)
    rows = MAX_BATCH_CAP
    while rows > 1 and model_patcher.model.memory_required([2 * rows, *latent_shape]) > budget:
        rows //= 2
    return rows


# ---------------------------------------------------------------- CIS sweep (CISSweep)
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
        import inspect
        from comfy.k_diffusion import sampling as kds
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


def sweep_latents(model_patcher, base, concept, negative, latent: dict, seeds: list[int], ks: list[int], steps: int,
                  cfg: float, sampler_name: str, scheduler: str, max_batch: int | None, progress=None):
    """Final latents (S, K, C, h, w) of every (seed, k) branch, on the intermediate device, and the sigmas
    (steps + 1,) on the CPU: one sampler run, each branch bit-identical to ConceptInsertionSampler with that
    seed and k. progress(step, x0) is called after every sampler step with the predicted x0 of every row."""
    import comfy.sample
    check_conditionings(base=base, concept=concept, negative=negative)
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"max_batch={max_batch}: must be at least 1")
    latent_image = comfy.sample.fix_empty_latent_channels(model_patcher, latent["samples"])
    if latent_image.shape[0] != 1:
        raise ValueError(f"latent: a batch of {latent_image.shape[0]}; a CIS sweep makes one image per seed and "
                         "(seed, k): give a latent of batch 1 (EmptyLatentImage batch_size 1) and set the seeds")
    if latent.get("noise_mask") is not None:
        raise ValueError("latent: has a noise mask; a CIS sweep does not inpaint (remove SetLatentNoiseMask)")
    sigmas = sampler_sigmas(model_patcher, steps, sampler_name, scheduler, 1.0)
    if sampler_name not in BATCH_EXACT_SAMPLERS:
        return _sweep_per_branch(model_patcher, base, concept, negative, latent, seeds, ks, steps, cfg, sampler_name,
                                 scheduler, progress), sigmas
    S, K = len(seeds), len(ks)
    last = len(sigmas) - 1  # base only (k = steps) even where the scheduler runs an extra step
    boundaries = torch.tensor([schedule.insertion_boundary(sigmas, last if k == steps else k) for k in ks],
                              dtype=torch.float64).repeat(S)
    lineage = torch.arange(S).repeat_interleave(K)
    noise = torch.cat([comfy.sample.prepare_noise(latent_image, s, latent.get("batch_index")) for s in seeds])
    sampler = PerSeedNoiseSampler(comfy.samplers.sampler_object(sampler_name), sampler_name, seeds, K)
    guider = SweepGuider(model_patcher, base, concept, negative, cfg, boundaries, lineage, max_batch)
    callback = None if progress is None else (lambda step, x0, x, total: progress(step, x0))
    samples = guider.sample(noise.repeat_interleave(K, dim=0), latent_image.repeat(S * K, *[1] * (latent_image.ndim - 1)),
                            sampler, sigmas, callback=callback, disable_pbar=True, seed=seeds[0])
    samples = samples.to(comfy.model_management.intermediate_device())
    return samples.reshape(S, K, *samples.shape[1:]), sigmas


def _sweep_per_branch(model_patcher, base, concept, negative, latent, seeds, ks, steps, cfg, sampler_name,
                      scheduler, progress):
    """The fallback for samplers not known to be batch-exact: one batch-1 ConceptInsertionSampler run per
    branch (progress reports the branch's steps)."""
    rows = []
    for seed in seeds:
        for k in ks:
            out = concept_insertion_sample(model_patcher, seed, steps, cfg, sampler_name, scheduler, base, concept,
                                           negative, latent, k)["samples"]
            rows.append(out)
            if progress is not None:
                progress(len(rows) * steps // (len(seeds) * len(ks)) - 1, out)
    out = torch.cat(rows)
    return out.reshape(len(seeds), len(ks), *out.shape[1:])


def decode_and_judge(vae, judge, latents: torch.Tensor, text: str, contrast: str | None, max_batch: int,
                     progress=None):
    """Images (N, H, W, 3) float on the CPU and judge scores (N,) of latents (N, C, h, w), decoded and
    judged max_batch at a time; progress(done, total) after every chunk."""
    import numpy as np
    images, scores = [], []
    n = latents.shape[0]
    for start in range(0, n, max_batch):
        comfy.model_management.throw_exception_if_processing_interrupted()
        chunk = vae.decode(latents[start:start + max_batch])
        if chunk.ndim == 5:  # video VAEs: (B, T, H, W, C) -> frames
            chunk = chunk.reshape(-1, *chunk.shape[-3:])
        chunk = chunk.float().cpu()
        images.append(chunk)
        scores.append(judge.score(chunk, text, contrast).numpy())
        if progress is not None:
            progress(min(start + max_batch, n), n)
    return torch.cat(images), np.concatenate(scores).astype(np.float64)


def step_sigmas(sigmas: torch.Tensor, steps: int) -> list[float]:
    """steps + 1 sigmas for the noise axis: where a scheduler runs an extra step (ddim_uniform) the last
    one (base only) stands for k = steps, as the sweep's boundaries do."""
    values = [float(s) for s in sigmas]
    return values if len(values) == steps + 1 else values[:steps] + values[-1:]


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


def sweep_settings(model_patcher, base, concept, negative, latent, sampler_name, scheduler, cfg, judge) -> dict:
    """What identifies a sweep's images besides the seeds (results.SETTINGS_KEYS)."""
    samples = latent["samples"]
    return {"model": model_label(model_patcher), "sampler": sampler_name, "scheduler": scheduler, "cfg": float(cfg),
            "base_prompt": conditioning_label(base), "concept_prompt": conditioning_label(concept),
            "negative_prompt": conditioning_label(negative), "judge": judge,
            "latent_size": [int(samples.shape[-2]), int(samples.shape[-1])],
            "latent": "empty" if not torch.count_nonzero(samples) else f"sha1 {_sha1([samples])}"}


def same_conditioning(a, b) -> bool:
    """The two conditionings hold the same tensors (e.g. the same text, encoded by the same CLIP)."""
    return len(a) == len(b) and all(x[0].shape == y[0].shape and torch.equal(x[0], y[0]) for x, y in zip(a, b))


def sweep_warnings(base, concept) -> list[str]:
    """Inputs that run but measure nothing useful."""
    if same_conditioning(base, concept):
        message = "base and concept conditioning are the same: every k gives the same image, the curve is flat"
        logging.warning("CISSweep: " + message)
        return [message]
    return []


def image_batch(image) -> torch.Tensor:
    """An (H, W, 3) float array in [0, 1] as a ComfyUI IMAGE batch of one."""
    return torch.from_numpy(image).float().unsqueeze(0)


# ---------------------------------------------------------------- concept studies (PCIConceptList, CISStudy)

def encode_text(clip, text: str):
    """A CONDITIONING of text, as CLIPTextEncode makes it."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def study_folder(run_name: str) -> Path:
    """output/pci/<run name>/: a study's folder (one run folder per concept below it); ValueError for a
    name that is empty or leaves that folder."""
    root = Path(folder_paths.get_output_directory()) / "pci"
    name = (run_name or "").strip()
    folder = (root / name).resolve()
    if not name or root.resolve() not in folder.parents:
        raise ValueError(f"run_name {run_name!r}: give a folder name below output/pci, e.g. 'study_colour'")
    return folder


# ---------------------------------------------------------------- editing (BestTimestepEdit)
# A seed edit is a concept insertion (source prompt before step k, edit prompt from k on). An input
# image is VAE-encoded, inverted with the source prompt to the noise level of step k by ComfyUI's own
# sampling over the flipped sigmas (euler, no added noise: the DDIM ODE run backwards, as FlipSigmas
# unsampling does), then finished over steps k..T with the edit prompt.

INVERSION_SAMPLER = "euler"  # deterministic: the inversion must not add noise


def check_image_for_vae(image: torch.Tensor, vae) -> None:
    """ValueError naming `image` when its size is not a multiple of the VAE's downscale factor."""
    factor = int(vae.spacial_compression_encode())
    h, w = int(image.shape[1]), int(image.shape[2])
    if h % factor or w % factor:
        raise ValueError(f"image is {w}x{h} pixels; this VAE needs width and height that are multiples of {factor} "
                         f"(e.g. {w - w % factor or factor}x{h - h % factor or factor}): crop or scale it first "
                         "(ImageScale, ImageCrop)")


def _guided_run(model_patcher, positive, negative, cfg: float, sampler_name: str, sigmas: torch.Tensor,
                latent: torch.Tensor, seed: int) -> torch.Tensor:
    """ComfyUI's CFGGuider over sigmas from latent with no noise added (the latent already sits at sigmas[0])."""
    import comfy.utils
    import latent_preview
    if len(sigmas) < 2:
        return latent
    guider = comfy.samplers.CFGGuider(model_patcher)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    callback = latent_preview.prepare_callback(model_patcher, len(sigmas) - 1)  # progress, preview, interrupt
    out = guider.sample(torch.zeros_like(latent), latent, comfy.samplers.sampler_object(sampler_name), sigmas,
                        callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    return out.to(comfy.model_management.intermediate_device())


def invert_latent(model_patcher, latent: torch.Tensor, source, negative, cfg: float, sigmas: torch.Tensor, k: int,
                  seed: int) -> torch.Tensor:
    """The clean latent carried to the noise level sigmas[k] with the source prompt (euler over
    sigmas[k:] flipped). For flow models (CONST) k = 0 is sigma 1, where no inversion exists: use k >= 1."""
    sigma_min = float(model_patcher.get_model_object("model_sampling").sigma_min)
    return _guided_run(model_patcher, source, negative, cfg, INVERSION_SAMPLER,
                       editing.inversion_sigmas(sigmas, k, sigma_min), latent, seed)


def edit_image(model_patcher, vae, image: torch.Tensor, source, edit, negative, seed: int, steps: int, cfg: float,
               sampler_name: str, scheduler: str, k: int, inversion_cfg: float) -> torch.Tensor:
    """An input IMAGE edited: encode, invert to step k with the source prompt, finish k..T with the edit prompt."""
    check_conditionings(source=source, edit=edit, negative=negative)
    check_image_for_vae(image, vae)
    latent = vae.encode(image[:, :, :, :3])
    sigmas = sampler_sigmas(model_patcher, steps, sampler_name, scheduler, 1.0)
    noisy = invert_latent(model_patcher, latent, source, negative, inversion_cfg, sigmas, k, seed)
    comfy.model_management.throw_exception_if_processing_interrupted()
    edited = _guided_run(model_patcher, edit, negative, cfg, sampler_name, sigmas[k:], noisy, seed)
    return vae.decode(edited).float().cpu()


def edit_seed(model_patcher, vae, latent: dict, source, edit, negative, seed: int, steps: int, cfg: float,
              sampler_name: str, scheduler: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(edited, source) images of a seed: the concept insertion at k, and the source prompt alone (k = steps)."""
    run = lambda step: concept_insertion_sample(model_patcher, seed, steps, cfg, sampler_name, scheduler, source, edit,
                                                negative, latent, step)["samples"]
    source_latent = run(steps)
    edited_latent = source_latent if k == steps else run(k)
    return vae.decode(edited_latent).float().cpu(), vae.decode(source_latent).float().cpu()


def probe_edit(model_patcher, vae, judge, latent: torch.Tensor, source, edit, negative, seeds: list[int], steps: int,
               cfg: float, sampler_name: str, scheduler: str, judge_text: str, contrast: str | None, progress=None):
    """Every k on helper seeds in one sweep: judge scores on judge_text (S, K), SSIM of each image to its
    seed's source image (S, K), and the sigmas."""
    ks, max_batch = list(range(steps + 1)), max_batch_for_device(model_patcher, latent.shape[1:])
    latents, sigmas = sweep_latents(model_patcher, source, edit, negative, {"samples": latent[:1]}, seeds, ks, steps,
                                    cfg, sampler_name, scheduler, max_batch, progress)
    images, scores = decode_and_judge(vae, judge, latents.reshape(-1, *latents.shape[2:]), judge_text, contrast,
                                      max_batch)
    images = images.reshape(len(seeds), len(ks), *images.shape[1:])
    kept = torch.stack([editing.ssim(images[:, -1], images[:, i]) for i in range(len(ks))], dim=1)
    return scores.reshape(len(seeds), len(ks)), kept.numpy().astype("float64"), sigmas


def invert_every_step(model_patcher, latent: torch.Tensor, source, negative, cfg: float, sigmas: torch.Tensor,
                      seed: int) -> list[torch.Tensor]:
    """The clean latent carried to the noise level of every step with the source prompt: index k holds it at
    sigmas[k] (k = T: the latent itself). One euler step per call over the flipped sigmas, so each level is
    the one invert_latent reaches for that k (T model rows in all)."""
    sigma_min = float(model_patcher.get_model_object("model_sampling").sigma_min)
    up = editing.inversion_sigmas(sigmas, 0, sigma_min)
    levels = [latent]
    for i in range(len(up) - 1):
        comfy.model_management.throw_exception_if_processing_interrupted()
        levels.append(_guided_run(model_patcher, source, negative, cfg, INVERSION_SAMPLER, up[i:i + 2], levels[-1],
                                  seed))
    return levels[::-1]


def probe_image_edit(model_patcher, vae, judge, image: torch.Tensor, source, edit, negative, seed: int, steps: int,
                     cfg: float, sampler_name: str, scheduler: str, inversion_cfg: float, judge_text: str,
                     contrast: str | None, progress=None):
    """An input IMAGE edited at every k (inverted once to every level, then steps k..T with the edit prompt for
    each k: T + sum(T - k) model rows): judge scores on judge_text (B, K) and SSIM to the image (B, K)."""
    check_image_for_vae(image, vae)
    pixels = image[:, :, :, :3]
    sigmas = sampler_sigmas(model_patcher, steps, sampler_name, scheduler, 1.0)
    levels = invert_every_step(model_patcher, vae.encode(pixels), source, negative, inversion_cfg, sigmas, seed)
    scores, kept = [], []
    for k in range(steps + 1):
        comfy.model_management.throw_exception_if_processing_interrupted()
        edited = vae.decode(_guided_run(model_patcher, edit, negative, cfg, sampler_name, sigmas[k:], levels[k],
                                        seed)).float().cpu()
        scores.append(judge.score(edited, judge_text, contrast).double().cpu())
        kept.append(editing.ssim(pixels.float().cpu(), edited).double())
        if progress is not None:
            progress(k, steps)
    return torch.stack(scores, dim=1).numpy(), torch.stack(kept, dim=1).numpy()
