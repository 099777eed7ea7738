"""clip: open_clip zero-shot. softmax of logit_scale * cosine between the image and two texts, the
concept and a contrast (the base prompt, else "a photo"); each text is the mean normalised embedding
over prompt templates. open_clip is imported only here."""
from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path
from typing import Sequence

import torch

from .base import DEFAULT_CLIP_TEMPLATES, DEFAULT_CONTRAST, Judge, JudgeModel, check_device, check_templates, require
from .weights import _state_dict_mismatch, read_state_dict


def _tensor_preprocess(preprocess_cfg: dict):
    """open_clip's own eval transform for this model, run on a batch of tensors (B, 3, H, W) in [0, 1].

    open_clip builds it for PIL images; its steps also take tensors, except ResizeKeepRatio (used for
    non-square sizes and resize_mode 'longest'), which reads a PIL size: the same rule is applied here."""
    from open_clip.transform import PreprocessCfg, ResizeKeepRatio, image_transform_v2, merge_preprocess_dict
    from torchvision.transforms import Normalize

    cfg = PreprocessCfg(**merge_preprocess_dict(PreprocessCfg(), preprocess_cfg))
    steps = []
    for step in image_transform_v2(cfg, is_train=False).transforms:
        if isinstance(step, ResizeKeepRatio):
            step = _resize_keep_ratio(step)
        elif isinstance(step, Normalize):
            steps.append(lambda x: x.clamp(0.0, 1.0))  # bicubic overshoots; PIL's uint8 path clips there
        steps.append(step)

    def run(images: torch.Tensor) -> torch.Tensor:
        for step in steps:
            images = step(images)
        return images
    return run


def _resize_keep_ratio(rule):
    """open_clip's ResizeKeepRatio (eval: no random scale or aspect) on a tensor (..., H, W)."""
    from torchvision.transforms import functional as TF

    def resize(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        rh, rw = h / rule.size[0], w / rule.size[1]
        ratio = max(rh, rw) * rule.longest + min(rh, rw) * (1.0 - rule.longest)
        return TF.resize(x, [round(h / ratio), round(w / ratio)], rule.interpolation, antialias=True)
    return resize


class ClipModel(JudgeModel):
    """An open_clip network with its tokenizer and its own eval preprocessing (shared by ClipJudges)."""

    def __init__(self, module: torch.nn.Module, tokenizer, device, arch: str, offload=None, dtype=None):
        open_clip = require("open_clip", "open_clip_torch", "clip")
        super().__init__(module, check_device(device), offload, dtype)
        self.tokenizer, self.arch = tokenizer, arch
        self.preprocess = _tensor_preprocess(open_clip.get_model_preprocess_cfg(module))


class ClipJudge(Judge):
    """softmax([s * cos(image, concept), s * cos(image, contrast)])[0], s the model's logit scale."""

    name = "clip"

    def __init__(self, net: ClipModel, templates: Sequence[str] = DEFAULT_CLIP_TEMPLATES, batch_size: int = 32):
        self.net = net
        self.templates = check_templates(templates, "{}", "clip prompt templates")
        self.batch_size = int(batch_size)
        self._text_cache: dict[str, torch.Tensor] = {}

    model = property(lambda self: self.net.module)
    preprocess = property(lambda self: self.net.preprocess)
    tokenizer = property(lambda self: self.net.tokenizer)

    def describe(self) -> str:
        return f"clip {self.net.arch} on {self.net.device}, templates {list(self.templates)}"

    def text_embedding(self, text: str) -> torch.Tensor:
        """(D,) unit vector on the CPU: the mean over templates of normalised text embeddings, renormalised.
        Cached (on the CPU, so the network may move between devices)."""
        if text not in self._text_cache:
            device = self.net.place()
            tokens = self.net.tokenizer([t.replace("{}", text) for t in self.templates]).to(device)
            with torch.no_grad():
                per_template = self.model.encode_text(tokens, normalize=True).float()
            mean = per_template.mean(dim=0)
            if len(self._text_cache) >= 4096:  # a long session's prompts; bound the memory
                self._text_cache.clear()
            self._text_cache[text] = (mean / mean.norm()).cpu()
        return self._text_cache[text]

    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """(B, D) unit vectors of images (B, H, W, 3) in [0, 1], in chunks of batch_size, on the CPU."""
        out = []
        for chunk in images.split(self.batch_size):
            device = self.net.place()  # per chunk: a host may have moved the network in between
            pixels = self.net.preprocess(chunk.to(device).permute(0, 3, 1, 2))
            out.append(self.model.encode_image(pixels.to(self.net.dtype), normalize=True).float().cpu())
        return torch.cat(out)

    def _score(self, images, concept, contrast):
        texts = torch.stack([self.text_embedding(concept), self.text_embedding(contrast or DEFAULT_CONTRAST)])
        logits = self.model.logit_scale.exp().float().cpu() * self.image_embeddings(images) @ texts.T
        return logits.softmax(dim=-1)[:, 0]


def _clip_model_config(arch: str) -> dict:
    open_clip = require("open_clip", "open_clip_torch", "clip")

    if not isinstance(arch, str) or not arch.strip():
        raise ValueError("clip judge model: give an open_clip architecture name such as 'ViT-B-32'")
    if ":" in arch:
        raise ValueError(f"clip judge model {arch!r}: give an open_clip architecture name such as 'ViT-B-32', "
                         f"not a hub or folder reference (the judge never downloads; weights come from a file)")
    config = open_clip.get_model_config(arch)
    if config is None:
        names = open_clip.list_models()
        close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
        raise ValueError(f"clip judge model {arch!r}: not an open_clip architecture; "
                         f"{'closest: ' + ', '.join(close) + '; ' if close else ''}"
                         f"valid names are open_clip.list_models() ({len(names)} names, e.g. ViT-B-32, ViT-L-14)")
    _check_tokenizer(config, arch)
    return config


def _check_tokenizer(config: dict, name: str) -> None:
    """The judge never downloads: refuse architectures whose text tower or tokenizer come from the hub."""
    text_cfg = config.get("text_cfg", {})
    if "hf_model_name" in text_cfg or "hf_tokenizer_name" in text_cfg:
        raise ValueError(f"clip judge model {name!r}: its text tower or tokenizer is fetched from the Hugging "
                         f"Face hub ({text_cfg.get('hf_model_name') or text_cfg.get('hf_tokenizer_name')}); "
                         f"the judge never downloads, so choose an architecture with open_clip's built-in "
                         f"tokenizer (e.g. ViT-B-32, ViT-B-16, ViT-L-14, ViT-H-14)")


class _DropMessages(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


OPEN_CLIP_CONFIG = "open_clip_config.json"  # beside the weights in open_clip's Hugging Face repositories
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # as they are published
PRECISIONS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def published_layout(weights: Path) -> tuple[Path, Path] | None:
    """(folder, weights file) when the weights are an open_clip repository as published (a folder holding
    open_clip_config.json and open_clip_model.safetensors, or one of those files); else None."""
    folder = weights if weights.is_dir() else weights.parent
    if not (folder / OPEN_CLIP_CONFIG).is_file():
        return None
    if weights.is_file() and weights.name != OPEN_CLIP_CONFIG:
        return folder, weights
    found = [folder / name for name in OPEN_CLIP_WEIGHTS if (folder / name).is_file()]
    if not found:
        raise FileNotFoundError(f"clip judge: folder '{folder}' has {OPEN_CLIP_CONFIG} but no weights file "
                                f"({' or '.join(OPEN_CLIP_WEIGHTS)})")
    return folder, found[0]


def load_clip_model(arch: str | None, weights: Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32, offload: torch.device | None = None) -> ClipModel:
    """An open_clip network from local files: an architecture name and a weights file, or a repository as
    open_clip publishes it (open_clip_config.json names the architecture; the name may then be empty)."""
    open_clip = require("open_clip", "open_clip_torch", "clip")
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    layout = published_layout(Path(weights))
    if layout is not None:
        folder, weights = layout
        name = f"local-dir:{folder}"
        _check_tokenizer(json.loads((folder / OPEN_CLIP_CONFIG).read_text(encoding="utf-8")).get("model_cfg", {}),
                         str(folder))
    elif arch:
        _clip_model_config(arch)
        name = arch
    else:
        raise ValueError(f"clip judge: give the open_clip architecture of {str(weights)!r} (e.g. ViT-B-32), or the "
                         f"folder as open_clip publishes it (with {OPEN_CLIP_CONFIG})")
    if dtype not in PRECISIONS:
        raise ValueError(f"clip judge dtype {dtype}: one of {', '.join(map(str, PRECISIONS))}")
    root = logging.getLogger()
    quiet = _DropMessages("No pretrained weights loaded")  # true only until the file's weights load below
    root.addFilter(quiet)
    try:
        model = open_clip.create_model(name, pretrained=None, load_weights=False, pretrained_image=False,
                                       pretrained_text=False, precision=PRECISIONS[dtype], device="cpu")
    finally:
        root.removeFilter(quiet)
    state = read_state_dict(weights)
    # The adaptations open_clip.load_checkpoint makes, on a state dict read without unpickling.
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    if "logit_scale" in state:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    resize_pos_embed(state, model)
    resize_text_pos_embed(state, model)
    mismatch = _state_dict_mismatch(model.state_dict(), state)
    if mismatch:
        raise ValueError(f"clip judge weights {str(weights)!r} do not fit architecture {name!r}: {mismatch}; "
                         f"is the architecture name the one the weights were trained as?")
    model.load_state_dict(state, strict=True)
    return ClipModel(model, open_clip.get_tokenizer(name), device, name, offload, dtype)
