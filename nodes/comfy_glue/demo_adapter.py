"""The demo model as ComfyUI's own MODEL (BaseModel + ModelPatcher), CLIP (comfy.sd.CLIP) and VAE, and
the demo world's rule judge for the judge loader. The only module of the pack's ComfyUI glue that
imports pci_core.demo."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models_base
import folder_paths

from ...pci_core.demo import demo_model, world
from ...pci_core.demo.lora import LORA_FOLDER
from ...pci_core.demo.rule_judge import RuleJudge

DEMO_FOLDER = "pci_demo"
folder_paths.add_model_folder_path(DEMO_FOLDER, os.path.join(folder_paths.models_dir, DEMO_FOLDER))
# The demo LoRA (pci_core/demo/loras) in ComfyUI's LoRA lists, for CreateHookLora and LoraLoader
folder_paths.add_model_folder_path("loras", str(LORA_FOLDER))


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


RULE_BACKEND = "rule"


def rule_judge() -> RuleJudge:
    """The demo world's exact pixel judge (backend "rule" of PCI Judge Loader)."""
    return RuleJudge()
