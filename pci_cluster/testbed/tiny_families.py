"""Tiny random-initialised models of real families (SDXL, SD3, FLUX, Qwen-Image, Wan 2.1), built from
ComfyUI's own classes, so the host tier runs the pack's nodes on each family's own code path: its
model_base class and extra_conds (SDXL's ADM vector, FLUX's guidance), its model_sampling (EPS, discrete
flow, FLUX's shifted flow), its latent format and shape (16 channels; 5-D for Qwen-Image and Wan) and a
VAE of its kind. Nothing is downloaded. Import only under ComfyUI's Python, after ComfyUI is imported.

The configs have the keys ComfyUI's model detection writes, with the widths and depths cut down. A tiny
model cannot go through detection itself (it matches SDXL by model_channels 320 and builds FLUX and
Qwen-Image at their full widths whatever the weights), so a builder does what
comfy.sd.load_diffusion_model_state_dict does once detection has named the config class: set the
inference dtype, get_model, load_model_weights, wrap in a ModelPatcher. The text encoders'
outputs keep their real shapes (77 x 2048 for SDXL, 154 x 4096 for SD3, ...): only the models are tiny.

Weights are drawn as in sd15.py: N(0, 1/fan_in), norms' scales 1, biases and shifts 0, from a generator
seeded per family, so every build is identical (ComfyUI's ops leave weights uninitialised on purpose).
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from contextlib import contextmanager
from typing import Any, Callable, NamedTuple

import torch

LATENT_SIZE = 16  # latent pixels a side: 128 x 128 images through the 8x VAEs (a decode is most of a run)


class Family(NamedTuple):
    name: str
    model: Any  # comfy.model_patcher.ModelPatcher over the family's model_base class
    vae: Any  # comfy.sd.VAE: LATENT <-> IMAGE
    encode: Callable[[str], list]  # text -> CONDITIONING shaped as the family's text encoder gives it
    latent: Callable[..., dict]  # (batch=1, size=LATENT_SIZE) -> LATENT of zeros of the family's shape


def random_state_dict(module: torch.nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A value for every tensor of module's state dict: norms' scales 1 and shifts 0, other 1-D tensors
    (biases) 0, the rest N(0, 1/fan_in), which keeps activations of order one through every block."""
    state = {}
    for name, value in module.state_dict().items():
        owner = module.get_submodule(name.rpartition(".")[0])
        if "norm" in type(owner).__name__.lower():  # GroupNorm, LayerNorm, RMSNorm, Wan's RMS_norm
            state[name] = torch.zeros(value.shape) if name.endswith("bias") else torch.ones(value.shape)
        elif value.ndim < 2:
            state[name] = torch.zeros(value.shape)
        else:
            state[name] = torch.randn(value.shape, generator=generator) * value[0].numel() ** -0.5
    return state


@contextmanager
def _quiet():
    """Silence ComfyUI's missing-key warnings (and torch's meta-copy warning) while building a probe
    that is missing every weight by design."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _text_generator(text: str) -> torch.Generator:
    """The same text always gives the same tensors, two texts differ (Python's hash() is salted per run)."""
    return torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _words(text: str) -> int:
    return len(text.split())


def model_patcher(config_class, unet_config: dict, seed: int):
    """A ModelPatcher over config_class's model, built as load_diffusion_model_state_dict builds it
    (float32, on ComfyUI's devices), with random weights loaded through load_model_weights."""
    import comfy.model_management as mm
    import comfy.model_patcher
    config = config_class(unet_config)
    load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
    config.set_inference_dtype(torch.float32,
                               mm.unet_manual_cast(torch.float32, load_device, config.supported_inference_dtypes))
    model = config.get_model({}).to(offload_device)
    model.load_model_weights(random_state_dict(model.diffusion_model, torch.Generator().manual_seed(seed)), "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def kl_vae(z_channels: int, seed: int):
    """comfy.sd.VAE(sd, config): its own way to a VAE of another width (it builds
    AutoencoderKL(**config["params"])): SD's four levels (8x), 32 channels wide, one res block a level,
    loaded from a complete random state dict as a VAE file is. SDXL's VAE is this architecture; FLUX's
    and SD3's are the same Encoder/Decoder without the two 1x1 quant convs, which AutoencoderKL adds."""
    import comfy.sd
    ddconfig = {"double_z": True, "z_channels": z_channels, "resolution": 256, "in_channels": 3, "out_ch": 3,
                "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    config = {"params": {"ddconfig": ddconfig, "embed_dim": z_channels}}
    with _quiet(), torch.device("meta"):
        probe = comfy.sd.VAE(sd={}, config=config).first_stage_model
    return comfy.sd.VAE(sd=random_state_dict(probe, torch.Generator().manual_seed(seed)), config=config,
                        dtype=torch.float32)


def wan_vae_probe() -> dict:
    """The keys of a Wan 2.1 VAE file that either ComfyUI reads to detect it: v0.3.64 the first alone (then a
    fixed config); today's (comfy/sd.py at 033046cc) also the width, image and output channels from the
    other three. Shapes as in the published Wan 2.1 VAE (dim 96)."""
    return {"decoder.middle.0.residual.0.gamma": torch.zeros(384, 1, 1, 1), "decoder.head.0.gamma": torch.zeros(96, 1, 1, 1),
            "encoder.conv1.weight": torch.zeros(96, 3, 3, 3, 3), "decoder.head.2.weight": torch.zeros(3, 96, 3, 3, 3)}


def wan_vae(seed: int):
    """Wan 2.1's VAE (Qwen-Image uses the same): comfy.sd.VAE detects it from its keys and sets its causal
    3-D settings (8x space, 4x time, 5-D latents), but builds it only at full width (127 M weights, 7 s
    to decode one 128 x 128 image on this CPU) and its config argument builds only AutoencoderKL, so the
    detected wrapper (built on the meta device) keeps its settings and gets the same WanVAE class 16
    channels wide instead, set as VAE.__init__ sets its model and patcher."""
    import comfy.ldm.wan.vae
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    with _quiet(), torch.device("meta"):
        vae = comfy.sd.VAE(sd=wan_vae_probe(), dtype=torch.float32)
    tiny = comfy.ldm.wan.vae.WanVAE(dim=16, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
                                    temperal_downsample=[False, True, True], dropout=0.0)
    tiny.load_state_dict(random_state_dict(tiny, torch.Generator().manual_seed(seed)))
    vae.first_stage_model = tiny.eval().to(vae.vae_dtype)
    vae.patcher = comfy.model_patcher.ModelPatcher(tiny, load_device=vae.device, offload_device=mm.vae_offload_device())
    return vae


def _latent(channels: int, frames: int | None = None) -> Callable[..., dict]:
    """(batch, size) -> what EmptyLatentImage / EmptySD3LatentImage give (frames None), or the 5-D latent
    a 3-D latent format samples (B, C, frames, size, size): EmptyHunyuanLatentVideo's for Wan, and for
    Qwen-Image the 4-D EmptySD3LatentImage latent after common_ksampler's fix_empty_latent_channels."""
    def latent(batch: int = 1, size: int = LATENT_SIZE) -> dict:
        spatial = (size, size) if frames is None else (frames, size, size)
        return {"samples": torch.zeros((batch, channels, *spatial))}
    return latent


def sdxl(seed: int = 0) -> Family:
    """SDXL: UNet with ADM (pooled CLIP-G 1280 + six 256-d size embeddings = 2816), EPS, 4-ch latent.
    encode gives CLIPTextEncodeSDXL's output: CLIP-L + CLIP-G hidden states and the size keys."""
    import comfy.supported_models
    unet = {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
            "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4, "out_channels": 4,
            "model_channels": 64, "num_res_blocks": [1, 1], "transformer_depth": [0, 1],
            "transformer_depth_output": [0, 0, 1, 1], "channel_mult": [1, 2], "transformer_depth_middle": 1,
            "use_linear_in_transformer": True, "context_dim": 2048, "use_temporal_resblock": False,
            "use_temporal_attention": False}

    def encode(text):
        g = _text_generator(text)
        size = {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}
        return [[torch.randn(1, 77, 2048, generator=g), {"pooled_output": torch.randn(1, 1280, generator=g), **size}]]
    return Family("sdxl", model_patcher(comfy.supported_models.SDXL, unet, seed), kl_vae(4, seed), encode, _latent(4))


def sd3(seed: int = 0) -> Family:
    """SD3: MMDiT (depth 2 = 128 wide, two heads), discrete flow with shift 3, 16-ch latent. encode gives
    CLIP-L + CLIP-G (77 tokens, padded to 4096) then T5-XXL (77 tokens), pooled L + G (768 + 1280)."""
    import comfy.supported_models
    unet = {"in_channels": 16, "patch_size": 2, "out_channels": 16, "depth": 2, "input_size": None,
            "adm_in_channels": 2048,
            "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 128}},
            "num_patches": 32 * 32, "pos_embed_max_size": 32, "pos_embed_scaling_factor": None,
            "x_block_self_attn_layers": []}

    def encode(text):
        g = _text_generator(text)
        clip = torch.nn.functional.pad(torch.randn(1, 77, 2048, generator=g), (0, 2048))
        return [[torch.cat([clip, torch.randn(1, 77, 4096, generator=g)], dim=1),
                 {"pooled_output": torch.randn(1, 2048, generator=g)}]]
    return Family("sd3", model_patcher(comfy.supported_models.SD3, unet, seed), kl_vae(16, seed), encode, _latent(16))


def flux(seed: int = 0) -> Family:
    """FLUX.1-dev: guidance-distilled (extra_conds reads "guidance", 3.5 when absent), one double and one
    single block 128 wide, FLUX's shifted flow, 16-ch latent. encode gives T5-XXL (256 tokens, the
    tokenizer's minimum) and CLIP-L's pooled 768, with no guidance key, as CLIPTextEncode does."""
    import comfy.supported_models
    unet = {"image_model": "flux", "in_channels": 16, "patch_size": 2, "out_channels": 16, "vec_in_dim": 768,
            "context_in_dim": 4096, "hidden_size": 128, "mlp_ratio": 4.0, "num_heads": 2, "depth": 1,
            "depth_single_blocks": 1, "axes_dim": [16, 24, 24], "theta": 10000, "qkv_bias": True,
            "guidance_embed": True}

    def encode(text):
        g = _text_generator(text)
        return [[torch.randn(1, 256, 4096, generator=g), {"pooled_output": torch.randn(1, 768, generator=g)}]]
    return Family("flux", model_patcher(comfy.supported_models.Flux, unet, seed), kl_vae(16, seed), encode,
                  _latent(16))


def qwen_image(seed: int = 0) -> Family:
    """Qwen-Image: one double-stream block (two heads of 64), FLUX's shifted flow (shift 1.15), Wan 2.1's
    latent format and VAE, so 5-D latents (B, 16, 1, H, W). encode gives Qwen2.5-VL-7B's hidden states
    (3584) with the prompt template cut off: a text's own tokens (about one a word) plus the 5 closing
    ones, so two texts' conditionings differ in length, as they do in ComfyUI; no pooled output."""
    import comfy.supported_models
    unet = {"image_model": "qwen_image", "in_channels": 64, "out_channels": 16, "num_layers": 1,
            "attention_head_dim": 64, "num_attention_heads": 2, "axes_dims_rope": (16, 24, 24)}

    def encode(text):
        return [[torch.randn(1, _words(text) + 5, 3584, generator=_text_generator(text)), {"pooled_output": None}]]
    return Family("qwen_image", model_patcher(comfy.supported_models.QwenImage, unet, seed), wan_vae(seed), encode,
                  _latent(16, frames=1))


def wan21(seed: int = 0, frames: int = 1) -> Family:
    """Wan 2.1 text-to-video: two blocks 64 wide (two heads), discrete flow with shift 8, 5-D latents of
    `frames` latent frames (4 (frames - 1) + 1 video frames; 1 is a still image). encode gives UMT5-XXL's
    output: 512 tokens, zero past the text's own tokens (about one a word) and its end token
    (zero_out_masked); no pooled output."""
    import comfy.supported_models
    unet = {"image_model": "wan2.1", "model_type": "t2v", "dim": 64, "out_dim": 16, "num_heads": 2, "ffn_dim": 128,
            "num_layers": 2, "patch_size": (1, 2, 2), "freq_dim": 256, "window_size": (-1, -1), "qk_norm": True,
            "cross_attn_norm": True, "eps": 1e-6, "in_dim": 16}

    def encode(text):
        cond = torch.zeros(1, 512, 4096)
        tokens = _words(text) + 1
        cond[:, :tokens] = torch.randn(1, tokens, 4096, generator=_text_generator(text))
        return [[cond, {"pooled_output": None}]]
    return Family("wan21", model_patcher(comfy.supported_models.WAN21_T2V, unet, seed), wan_vae(seed), encode,
                  _latent(16, frames=frames))


FAMILIES: dict[str, Callable[..., Family]] = {"sdxl": sdxl, "sd3": sd3, "flux": flux, "qwen_image": qwen_image,
                                              "wan21": wan21}
