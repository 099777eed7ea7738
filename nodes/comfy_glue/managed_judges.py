"""Judges under ComfyUI's memory manager, as ComfyUI's own models are.

A judge's network (pci_core.judges.JudgeModel, one per weights file, device and dtype whatever the
templates) is wrapped in a ModelPatcher, as comfy/clip_vision.py wraps its CLIP: before every batch
comfy.model_management loads it onto the device (offloading the UNet or VAE if the room is needed), it
is offloaded when they need the room back, and "Unload models" (unload_all_models) frees it with the
others. It is built on the offload device in the dtype ComfyUI would choose for the load device.
"""
from __future__ import annotations

import torch

import comfy.model_management as mm
import comfy.model_patcher

from ...pci_core import judges


class _Holder(torch.nn.Module):
    """ModelPatcher sets .device and a few counters on the module it manages; a transformers model's
    .device cannot be set, so the patcher manages this holder and the network is its child."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network


def devices(choice: str) -> tuple[torch.device, torch.device]:
    """(load device, offload device) for the loader's device input: 'auto' is ComfyUI's main device; with
    --novram ComfyUI would leave plain layers behind on the CPU, so the judge then runs there."""
    load = mm.get_torch_device() if choice == "auto" else judges.check_device(choice)
    if mm.vram_state == mm.VRAMState.NO_VRAM:
        load = torch.device("cpu")
    return load, mm.text_encoder_offload_device()


def dtype_for(backend: str, device: torch.device) -> torch.dtype:
    """What ComfyUI would run on the device: half precision where it runs well (bf16 first for a
    vision-language model, whose activations overflow fp16 more easily; fp16 first for CLIP), else fp32.
    The judges' layers are plain torch layers that compute in their weights' dtype (no manual cast)."""
    prefer = (torch.float16, torch.bfloat16) if backend == "clip" else (torch.bfloat16, torch.float16)
    for dtype in prefer:
        if dtype == torch.bfloat16 and mm.should_use_bf16(device):
            return dtype
        if dtype == torch.float16 and mm.should_use_fp16(device):
            return dtype
    return torch.float32


def managed(net: judges.JudgeModel, load: torch.device, offload: torch.device) -> judges.JudgeModel:
    """The network under comfy.model_management (once: every judge over it shares the one patcher)."""
    if getattr(net, "patcher", None) is None:
        net.patcher = comfy.model_patcher.ModelPatcher(_Holder(net.module), load_device=load, offload_device=offload)

        def placement() -> torch.device:
            # force_full_load: plain torch layers cannot run partly offloaded (only comfy.ops layers can)
            mm.load_models_gpu([net.patcher], force_full_load=True)
            return net.patcher.load_device

        net.placement = placement
    return net


def load(backend: str, model: str, weights, device: str, search_dirs, **options) -> judges.Judge:
    """A clip or vqa judge whose network ComfyUI manages (see the module's docstring)."""
    load_device, offload = devices(device)
    judge = judges.load_judge(backend, model=model, weights=weights, device=load_device, search_dirs=search_dirs,
                              dtype=dtype_for(backend, load_device), offload=offload, **options)
    managed(judge.net, load_device, offload)
    return judge
