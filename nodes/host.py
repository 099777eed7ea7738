"""All glue between pci_core and ComfyUI lives here; node files call these functions.

- the demo model as native MODEL (BaseModel + ModelPatcher), CLIP (comfy.sd.CLIP) and VAE;
- the concept-insertion guider: ComfyUI's own CFG sampling function, with the positive
  conditioning chosen per row by pci_core's branching denoiser.
"""
from __future__ import annotations

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

from ..pci_core import insertion, schedule
from ..pci_core.demo import demo_model

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
    supported_inference_dtypes = [torch.float32]
    memory_usage_factor = 1.0


class DemoTokenizer:
    """Word tokenizer in the duck interface of comfy/sd1_clip.py (what CLIPTextEncode calls)."""

    def __init__(self, embedding_directory=None, tokenizer_data={}):
        pass

    def tokenize_with_weights(self, text: str, return_word_ids=False, **kwargs):
        return {"ids": demo_model.tokenize(text)}  # ValueError names unknown words

    def untokenize(self, token_weight_pair):
        return token_weight_pair

    def state_dict(self):
        return {}


class DemoTextEncoder(torch.nn.Module):
    """The demo text encoder behind comfy.sd.CLIP: encode_token_weights -> (cond, pooled)."""

    def __init__(self, device=None, dtype=None, model_options={}, **kwargs):
        super().__init__()
        self.encoder = demo_model.TextEncoder(**demo_model.TEXT_CONFIG).to(device=device)
        self.dtypes = {torch.float32}

    def encode_token_weights(self, tokens):
        ids = torch.tensor([tokens["ids"]], dtype=torch.long, device=self.encoder.embed.weight.device)
        cond = self.encoder(ids)
        return cond, cond.mean(dim=1)

    def set_clip_options(self, options):
        pass

    def reset_clip_options(self):
        pass

    def load_sd(self, sd):
        return self.encoder.load_state_dict(sd)


def _model_patcher(model: demo_model.DemoModel) -> comfy.model_patcher.ModelPatcher:
    config = DemoModelConfig(demo_model.UNET_CONFIG)
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


def load_demo(weights: str = demo_model.WEIGHTS_FILE):
    """(MODEL, CLIP, VAE) of the demo model; built once per weights file."""
    path = folder_paths.get_full_path(DEMO_FOLDER, weights)
    if path is None:
        if weights != demo_model.WEIGHTS_FILE:
            raise FileNotFoundError(f"weights {weights!r} not found in folder "
                                    f"{folder_paths.get_folder_paths(DEMO_FOLDER)}")
        path = demo_model.DEFAULT_WEIGHTS
    key = (str(path), Path(path).stat().st_mtime if Path(path).exists() else None)
    if key not in _LOADED:
        model = demo_model.load(path)
        _LOADED.clear()
        _LOADED[key] = (_model_patcher(model), _clip(model), _vae(model))
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


def concept_insertion_sample(model_patcher, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                             base, concept, negative, latent: dict, insert_step: int, denoise: float = 1.0) -> dict:
    """KSampler with the positive prompt switched from base to concept at insert_step.

    As KSampler: a latent batch of B draws its noise from the one seed (row i is not seed + i), and
    with denoise < 1 the steps (and insert_step) count the steps actually run."""
    import comfy.sample
    import comfy.utils
    import latent_preview

    check_conditionings(base=base, concept=concept, negative=negative)
    latent_image = comfy.sample.fix_empty_latent_channels(model_patcher, latent["samples"])
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    sigmas = sampler_sigmas(model_patcher, steps, sampler_name, scheduler, denoise)
    k = insertion.resolve_insert_step(insert_step, steps)
    if k == steps:  # base only, even where the scheduler runs an extra step (ddim_uniform does)
        k = len(sigmas) - 1
    batch = latent_image.shape[0]
    boundaries = torch.full((batch,), schedule.insertion_boundary(sigmas, k), dtype=torch.float64)
    guider = ConceptInsertionGuider(model_patcher, base, concept, negative, cfg, boundaries, torch.arange(batch))
    callback = latent_preview.prepare_callback(model_patcher, len(sigmas) - 1)
    samples = guider.sample(noise, latent_image, comfy.samplers.sampler_object(sampler_name), sigmas,
                            denoise_mask=latent.get("noise_mask"), callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    out = latent.copy()
    out["samples"] = samples.to(comfy.model_management.intermediate_device())
    return out
