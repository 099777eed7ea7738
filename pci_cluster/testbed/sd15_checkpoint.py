"""A random-initialised SD1.5-format checkpoint, written from ComfyUI's own model classes, so the
host tier runs a real model family (SD1.5 UNet, CLIP-L, SD VAE) through core CheckpointLoaderSimple
with no weights to download. Import only under ComfyUI's Python.

The modules are built on the meta device (no memory, no init) only to get ComfyUI's key names and
shapes; the values are drawn directly: weights ~ N(0, 1/fan_in), norm scales 1, biases 0, which
keeps activations of order one through every block. Stored in float16 (2.1 GB instead of 4.3).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

# SD1.5's UNet as comfy/model_detection.py lists it (model_channels 320, context 768, ...).
SD15_UNET_CONFIG = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
    "adm_in_channels": None, "in_channels": 4, "model_channels": 320, "num_res_blocks": [2, 2, 2, 2],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1,
    "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_temporal_attention": False, "use_temporal_resblock": False}
FILE_NAME = "pci_random_sd15_v1.safetensors"  # bump the version when the recipe changes


def _shapes(module: torch.nn.Module) -> dict[str, tuple[torch.Size, torch.dtype]]:
    return {k: (v.shape, v.dtype) for k, v in module.state_dict().items()}


def sd15_shapes() -> dict[str, tuple[torch.Size, torch.dtype]]:
    """Every key of an SD1.5 checkpoint, as ComfyUI saves one (CheckpointSave's prefixes)."""
    import comfy.model_base
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models

    config = comfy.supported_models.SD15(dict(SD15_UNET_CONFIG))
    unet = comfy.model_base.BaseModel(config, device="meta").diffusion_model
    clip = comfy.sd1_clip.SD1ClipModel(device="meta")
    # comfy.sd.VAE picks the SD VAE from two keys of a state dict and builds its default config.
    probe = {"decoder.conv_in.weight": torch.zeros(512, 4, 3, 3), "post_quant_conv.weight": torch.zeros(4, 4, 1, 1)}
    logging.disable(logging.WARNING)  # the probe is missing every other key, by design
    try:
        with torch.device("meta"):
            vae = comfy.sd.VAE(sd=probe).first_stage_model
    finally:
        logging.disable(logging.NOTSET)
    shapes = {"model.diffusion_model." + k: v for k, v in _shapes(unet).items()}
    shapes.update(config.process_clip_state_dict_for_saving(_shapes(clip)))
    shapes.update(config.process_vae_state_dict_for_saving(_shapes(vae)))
    return shapes


def random_value(name: str, shape: torch.Size, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    if not dtype.is_floating_point:  # position ids and the like
        return torch.arange(shape[-1], dtype=dtype).expand(shape).clone()
    if len(shape) < 2:
        return torch.ones(shape) if name.endswith("weight") or name.endswith("scale") else torch.zeros(shape)
    fan_in = shape[1:].numel()
    return torch.randn(shape, generator=generator) * fan_in ** -0.5


def write_sd15_checkpoint(folder: Path, seed: int = 0, dtype: torch.dtype = torch.float16) -> Path:
    """Write the random SD1.5 checkpoint into `folder` (a models/checkpoints folder) unless it is
    there already (same name = same seed and recipe); its path. Written to a temporary name first,
    so an interrupted write never leaves a truncated checkpoint behind."""
    from safetensors.torch import save_file
    path = Path(folder) / FILE_NAME
    if path.is_file():
        return path
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, (shape, stored) in sd15_shapes().items():
        value = random_value(name, shape, stored, generator)
        state[name] = value.to(dtype) if value.is_floating_point() else value
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial{os.getpid()}")
    save_file(state, str(partial), metadata={"note": "random init, SD1.5 architecture, for tests only"})
    os.replace(partial, path)
    return path
