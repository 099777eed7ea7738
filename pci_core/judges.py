"""Judges: does an image show a concept? One interface, three backends.

A judge scores a batch of images against a concept text:

    judge.score(images, concept, contrast=None) -> float tensor (B,) in [0, 1], on the CPU
    judge.decide(scores, threshold=0.5)          -> bool tensor (B,): True where score >= threshold
                                                    (a score exactly at the threshold counts as yes)

Images are ComfyUI's IMAGE layout: a float tensor (B, H, W, 3) in [0, 1]; one (H, W, 3) image is a batch of one.

Backends (load_judge(backend, ...) builds one; the same arguments return the same object):
- "rule": the demo world's exact pixel judge: 1.0 when every attribute the concept names is read back
  from the pixels, else 0.0. Concepts are demo-world words ("red", "a large blue square on the left").
- "clip": open_clip zero-shot: softmax of logit_scale * cosine between the image and two texts, the concept
  and a contrast (the base prompt, else "a photo"); each text is the mean normalised embedding over
  prompt templates ("a photo of {}.").
- "vqa": a transformers vision-language model (e.g. Qwen2.5-VL) asked a yes/no question; the score is
  P(yes) from the next-token logits of the answer tokens "yes" and "no", not a parsed string.

Weights come only from local files; nothing here downloads. A missing file is a FileNotFoundError that names
the file and the folder looked in. open_clip and transformers are imported only inside their backends.
"""
from __future__ import annotations

import difflib
import inspect
import logging
import numbers
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import world

BACKENDS = ("rule", "clip", "vqa")
DEFAULT_CONTRAST = "a photo"
DEFAULT_CLIP_TEMPLATES = ("a photo of {}.",)
DEFAULT_VQA_QUESTION = "Is the {concept} visible in the image? Answer yes or no."
YES_WORDS = ("yes", "Yes", "YES")  # P(yes) sums the probability of every spelling that is one token
NO_WORDS = ("no", "No", "NO")
RANGE_TOLERANCE = 1e-3  # image values this far outside [0, 1] are clamped (float round-off), farther is an error


def require(module: str, package: str, backend: str):
    """Import an optional dependency of a backend, or say which package to install where."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"the {backend} judge needs the Python package {package!r} ({e}); install it into the "
                          f"Python that runs ComfyUI: python -m pip install {package}") from e


# ---------------------------------------------------------------- input checks

def as_image_batch(images: Any) -> torch.Tensor:
    """images as a float32 tensor (B, H, W, 3) in [0, 1]; ValueError naming what is wrong otherwise."""
    expected = "expected ComfyUI IMAGE: a float tensor (B, H, W, 3) or (H, W, 3) with values in [0, 1]"
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images: {expected}; got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"images: {expected}; got shape {tuple(images.shape)} ({images.ndim} dimensions)")
    if images.shape[-1] != 3:
        hint = "; it looks channel-first, use images.permute(0, 2, 3, 1)" if images.shape[1] == 3 else ""
        raise ValueError(f"images: {expected}; got shape {tuple(images.shape)}: the last dimension must be "
                         f"the 3 RGB channels{hint}")
    if 0 in images.shape:
        raise ValueError(f"images: {expected}; got an empty batch or image, shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images: {expected}; got dtype {images.dtype} (8-bit images: divide by 255.0)")
    images = images.float()
    if not torch.isfinite(images).all():
        raise ValueError(f"images: {expected}; got NaN or infinite values")
    low, high = images.min().item(), images.max().item()
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"images: {expected}; got values in [{low:.3g}, {high:.3g}] "
                         f"(images in [-1, 1] map to [0, 1] by (x + 1) / 2)")
    return images.clamp(0.0, 1.0).contiguous()


def check_text(text: Any, name: str) -> str:
    """A non-blank string, stripped; ValueError naming the input otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"{name}: expected a non-empty string such as 'a red circle'; got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{name}: empty; give the words to judge, such as 'a red circle'")
    return text.strip()


def check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold!r}: expected a number in [0, 1] "
                         f"(a score >= threshold counts as yes)")
    return float(threshold)


def check_backend(backend: Any) -> str:
    name = backend.strip().lower() if isinstance(backend, str) else backend
    if name not in BACKENDS:
        raise ValueError(f"judge backend {backend!r}: valid backends are {', '.join(BACKENDS)}")
    return name


def check_device(device: Any) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r}: expected a torch device such as 'cpu', 'cuda' or 'cuda:0' "
                         f"({e})") from None


def decide(scores: Any, threshold: float = 0.5) -> torch.Tensor:
    """Yes/no per image: True where score >= threshold (a score equal to the threshold is a yes)."""
    threshold = check_threshold(threshold)
    return torch.as_tensor(scores, dtype=torch.float32) >= threshold


# ---------------------------------------------------------------- the interface

class Judge:
    """Base of every judge: checks inputs, then asks the backend's _score for (B,) scores in [0, 1]."""

    name = "judge"

    def score(self, images: Any, concept: str, contrast: str | None = None) -> torch.Tensor:
        """Scores (B,) float32 on the CPU, in [0, 1]: how much each image shows the concept.
        contrast (e.g. the base prompt) is what the concept is told apart from; None or blank uses the
        backend's default. The rule and vqa judges ignore it."""
        batch = as_image_batch(images)
        concept = check_text(concept, "concept")
        if contrast is None or (isinstance(contrast, str) and not contrast.strip()):
            contrast = None  # the backend's default
        else:
            contrast = check_text(contrast, "contrast")
        with torch.no_grad():
            scores = self._score(batch, concept, contrast)
        return scores.detach().float().cpu().clamp(0.0, 1.0)

    def decide(self, scores: Any, threshold: float = 0.5) -> torch.Tensor:
        """Yes/no per image: True where score >= threshold (a score equal to the threshold is a yes)."""
        return decide(scores, threshold)

    def _score(self, images: torch.Tensor, concept: str, contrast: str | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def describe(self) -> str:
        return self.name


# ---------------------------------------------------------------- rule: the demo world's pixel judge

def parse_concept(concept: str) -> dict[str, str]:
    """Demo-world attributes a concept names; ValueError for unknown words or a concept naming none."""
    try:
        attributes = world.parse_prompt(concept)
    except ValueError as e:
        raise ValueError(f"concept: {e}") from None
    if not attributes:
        raise ValueError(f"concept {concept!r} names no demo-world attribute; name at least one value of "
                         + "; ".join(f"{a}: {', '.join(v)}" for a, v in world.ATTRIBUTES.items()))
    return attributes


class RuleJudge(Judge):
    """1.0 where every attribute the concept names is read back from the pixels, else 0.0."""

    name = "rule"

    def _score(self, images, concept, contrast):
        attributes = parse_concept(concept)
        return torch.from_numpy(world.judge_batch(images.cpu().numpy(), attributes))


# ---------------------------------------------------------------- clip: open_clip zero-shot

def check_templates(templates: Any, slot: str, name: str) -> tuple[str, ...]:
    """Templates as a non-empty tuple of strings that each contain the slot."""
    if isinstance(templates, str):
        templates = (templates,)
    templates = tuple(templates or ())
    bad = [t for t in templates if not isinstance(t, str) or slot not in t]
    if not templates or bad:
        example = DEFAULT_CLIP_TEMPLATES[0] if slot == "{}" else DEFAULT_VQA_QUESTION
        raise ValueError(f"{name}: each must be a string containing {slot!r}, e.g. {example!r}; "
                         f"got {list(bad or templates)}")
    return templates


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


class ClipJudge(Judge):
    """softmax([s * cos(image, concept), s * cos(image, contrast)])[0], s the model's logit scale."""

    name = "clip"

    def __init__(self, model: torch.nn.Module, tokenizer, templates: Sequence[str] = DEFAULT_CLIP_TEMPLATES,
                 device: str | torch.device = "cpu", batch_size: int = 32, arch: str = "?"):
        open_clip = require("open_clip", "open_clip_torch", "clip")

        self.device = check_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.templates = check_templates(templates, "{}", "clip prompt templates")
        self.batch_size = int(batch_size)
        self.arch = arch
        self.preprocess = _tensor_preprocess(open_clip.get_model_preprocess_cfg(model))
        self.dtype = next(model.parameters()).dtype
        self._text_cache: dict[str, torch.Tensor] = {}

    def describe(self) -> str:
        return f"clip {self.arch} on {self.device}, templates {list(self.templates)}"

    def text_embedding(self, text: str) -> torch.Tensor:
        """(D,) unit vector: the mean over templates of normalised text embeddings, renormalised. Cached."""
        if text not in self._text_cache:
            tokens = self.tokenizer([t.replace("{}", text) for t in self.templates]).to(self.device)
            with torch.no_grad():
                per_template = self.model.encode_text(tokens, normalize=True).float()
            mean = per_template.mean(dim=0)
            if len(self._text_cache) >= 4096:  # a long session's prompts; bound the memory
                self._text_cache.clear()
            self._text_cache[text] = mean / mean.norm()
        return self._text_cache[text]

    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """(B, D) unit vectors of images (B, H, W, 3) in [0, 1], in chunks of batch_size."""
        out = []
        for chunk in images.split(self.batch_size):
            pixels = self.preprocess(chunk.to(self.device).permute(0, 3, 1, 2))
            out.append(self.model.encode_image(pixels.to(self.dtype), normalize=True).float())
        return torch.cat(out)

    def _score(self, images, concept, contrast):
        texts = torch.stack([self.text_embedding(concept), self.text_embedding(contrast or DEFAULT_CONTRAST)])
        logits = self.model.logit_scale.exp().float() * self.image_embeddings(images) @ texts.T
        return logits.softmax(dim=-1)[:, 0]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a torch checkpoint, never unpickling code (weights_only=True)."""
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors.torch import load_file
        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # pickled code, TorchScript archives, ...
            raise ValueError(f"weights {str(path)!r}: not a plain tensor checkpoint loadable with "
                             f"weights_only=True ({type(e).__name__}: {e}); convert it to .safetensors") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"weights {str(path)!r}: expected a state dict of tensors, got {type(state).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def _state_dict_mismatch(expected: dict, found: dict) -> str:
    """'' when the keys and shapes agree, else a short account (counts and a few examples)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
                if k in found and found[k].shape != expected[k].shape]
    parts = [f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})"
             for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                ("tensors of another shape, file vs model", reshaped)) if keys]
    return "; ".join(parts)


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
    text_cfg = config.get("text_cfg", {})
    if "hf_model_name" in text_cfg or "hf_tokenizer_name" in text_cfg:
        raise ValueError(f"clip judge model {arch!r}: its text tower or tokenizer is fetched from the Hugging "
                         f"Face hub ({text_cfg.get('hf_model_name') or text_cfg.get('hf_tokenizer_name')}); "
                         f"the judge never downloads, so choose an architecture with open_clip's built-in "
                         f"tokenizer (e.g. ViT-B-32, ViT-B-16, ViT-L-14, ViT-H-14)")
    return config


class _DropMessages(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def build_clip_judge(arch: str, weights: Path, device: str | torch.device = "cpu",
                     templates: Sequence[str] = DEFAULT_CLIP_TEMPLATES, precision: str = "fp32",
                     batch_size: int = 32) -> ClipJudge:
    """A ClipJudge from an open_clip architecture name and a local weights file."""
    open_clip = require("open_clip", "open_clip_torch", "clip")
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    _clip_model_config(arch)
    root = logging.getLogger()
    quiet = _DropMessages("No pretrained weights loaded")  # true only until the file's weights load below
    root.addFilter(quiet)
    try:
        model = open_clip.create_model(arch, pretrained=None, load_weights=False, pretrained_image=False,
                                       pretrained_text=False, precision=precision, device="cpu")
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
        raise ValueError(f"clip judge weights {str(weights)!r} do not fit architecture {arch!r}: {mismatch}; "
                         f"is the architecture name the one the weights were trained as?")
    model.load_state_dict(state, strict=True)
    return ClipJudge(model, open_clip.get_tokenizer(arch), templates, device, batch_size, arch)


# ---------------------------------------------------------------- vqa: yes/no from a vision-language model

def answer_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """Ids of the spellings of an answer that are a single token (unknown-token ids left out)."""
    ids = []
    for word in words:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] != tokenizer.unk_token_id and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


class VqaJudge(Judge):
    """P(yes) = softmax over (logsumexp of 'yes' token logits, logsumexp of 'no' token logits)."""

    name = "vqa"

    def __init__(self, model, processor, question: str = DEFAULT_VQA_QUESTION,
                 device: str | torch.device = "cpu", batch_size: int = 8, folder: str = "?"):
        self.device = check_device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.question = check_templates(question, "{concept}", "vqa question template")[0]
        self.batch_size = int(batch_size)
        self.folder = folder
        processor.tokenizer.padding_side = "left"  # the answer's logits are then at position -1 in every row
        yes, no = answer_token_ids(processor.tokenizer, YES_WORDS), answer_token_ids(processor.tokenizer, NO_WORDS)
        if not yes or not no or set(yes) & set(no):
            raise ValueError(f"vqa judge {folder!r}: its tokenizer has no single token for "
                             f"{'yes' if not yes else 'no'} (tried {YES_WORDS if not yes else NO_WORDS})")
        self.yes_ids, self.no_ids = yes, no
        self._last_only = "logits_to_keep" in inspect.signature(model.forward).parameters

    def describe(self) -> str:
        return f"vqa {self.folder} on {self.device}, question {self.question!r}"

    def prompt(self, concept: str) -> str:
        """The model's chat-formatted question (one image, then the text), ready for its answer."""
        question = self.question.replace("{concept}", concept)
        if getattr(self.processor, "chat_template", None) is None:
            return question  # processors without a chat template place the image tokens themselves
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _score(self, images, concept, contrast):
        prompt = self.prompt(concept)
        dtype = next(self.model.parameters()).dtype
        extra = {"logits_to_keep": 1} if self._last_only else {}
        out = []
        for chunk in images.split(self.batch_size):
            inputs = self.processor(text=[prompt] * len(chunk), images=list(chunk.permute(0, 3, 1, 2)),
                                    return_tensors="pt", padding=True, do_rescale=False)  # already in [0, 1]
            inputs = inputs.to(device=self.device, dtype=dtype)
            logits = self.model(**inputs, use_cache=False, **extra).logits[:, -1].float()
            answers = torch.stack([logits[:, self.yes_ids].logsumexp(-1), logits[:, self.no_ids].logsumexp(-1)], -1)
            out.append(answers.softmax(dim=-1)[:, 0])
        return torch.cat(out)


def build_vqa_judge(folder: Path, device: str | torch.device = "cpu", question: str = DEFAULT_VQA_QUESTION,
                    dtype: str | torch.dtype | None = None, batch_size: int = 8) -> VqaJudge:
    """A VqaJudge from a local transformers model folder (config, weights, processor and tokenizer files)."""
    transformers = require("transformers", "transformers", "vqa")
    AutoModelForImageTextToText, AutoProcessor = transformers.AutoModelForImageTextToText, transformers.AutoProcessor

    device = check_device(device)
    if dtype is None:  # float32 on the CPU (bf16 matmuls are slow there); the checkpoint's dtype elsewhere
        dtype = torch.float32 if device.type == "cpu" else "auto"
    elif isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
    return VqaJudge(model, processor, question, device, batch_size, folder.name)


# ---------------------------------------------------------------- loading, with an in-process cache

_CACHE: dict[tuple, Judge] = {}


def resolve_weights(backend: str, weights: Any, search_dirs: Sequence[str | Path] = ()) -> Path:
    """The weights file (clip) or model folder (vqa) a name refers to: an absolute path, or a path relative
    to one of search_dirs (else to the working directory). FileNotFoundError names the file and folder."""
    what = "weights file" if backend == "clip" else "model folder"
    if not isinstance(weights, (str, Path)) or not str(weights).strip():
        raise ValueError(f"{backend} judge: give weights, the {what} (a path, or a name in the judges' models "
                         f"folder); got {weights!r}")
    name = Path(str(weights).strip()).expanduser()
    folders = [name.parent] if name.is_absolute() else [Path(d) for d in search_dirs] or [Path.cwd()]
    for folder in folders:
        path = folder / name
        if backend == "clip" and path.is_file():
            return path
        if backend == "clip" and path.is_dir():
            raise FileNotFoundError(f"clip judge: '{name}' in folder '{folder}' is a folder; the clip judge "
                                    f"needs a weights file (.safetensors, or a torch state-dict checkpoint)")
        if backend == "vqa" and (path.is_dir() or path.is_file()):
            model_folder = path if path.is_dir() else path.parent  # a file picked inside a model folder
            if not (model_folder / "config.json").is_file():
                raise FileNotFoundError(f"vqa judge: file 'config.json' not found in folder '{model_folder}'; "
                                        f"a vqa judge needs a transformers model folder (config.json, weights, "
                                        f"processor and tokenizer files, as save_pretrained writes them)")
            return model_folder
    shown = name.name if name.is_absolute() else str(name)
    where = ", ".join(f"'{f}'" + ("" if f.is_dir() else " (which does not exist)") for f in folders)
    raise FileNotFoundError(f"{backend} judge: {what} '{shown}' not found in folder{'s' if len(folders) > 1 else ''} "
                            f"{where}; place it there or give its full path (judge weights are never downloaded)")


def _mtime(path: Path | None) -> float | None:
    """Last change of a weights file, or of the newest file directly in a model folder."""
    if path is None:
        return None
    if path.is_dir():
        return max([p.stat().st_mtime for p in path.iterdir() if p.is_file()] + [path.stat().st_mtime])
    return path.stat().st_mtime


def _freeze(value: Any) -> Any:
    """A hashable form of option values (lists of templates, dtypes, ...), for the cache key."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def load_judge(backend: str, model: str | None = None, weights: str | Path | None = None,
               device: str | torch.device = "cpu", search_dirs: Sequence[str | Path] = (), **options) -> Judge:
    """The judge of a backend, built once per (backend, arch, path, device, mtime, options).

    backend "rule": no model or weights. "clip": model = open_clip architecture name ("ViT-B-32"), weights =
    a .safetensors file or a torch state-dict checkpoint; options templates, precision, batch_size.
    "vqa": weights = a transformers model folder; options question (with "{concept}"), dtype, batch_size.
    weights relative to one of search_dirs (e.g. ComfyUI's models/pci_judges) or absolute."""
    backend = check_backend(backend)
    device = check_device(device)
    path = None if backend == "rule" else resolve_weights(backend, weights, search_dirs)
    arch = model.strip().replace("/", "-") if backend == "clip" and isinstance(model, str) else None  # ViT-B/32
    key = (backend, arch, str(path) if path else None, str(device), _mtime(path), _freeze(options))
    if key not in _CACHE:
        if backend == "rule":
            if options:
                raise ValueError(f"rule judge takes no options; got {sorted(options)}")
            judge: Judge = RuleJudge()
        elif backend == "clip":
            judge = build_clip_judge(arch, path, device, **options)
        else:
            judge = build_vqa_judge(path, device, **options)
        _CACHE[key] = judge
    return _CACHE[key]


def clear_judge_cache() -> None:
    _CACHE.clear()


# ---------------------------------------------------------------- readable results

def summarize(concept: str, scores: torch.Tensor, decisions: torch.Tensor, threshold: float) -> str:
    """E.g. "3/4 images show 'red' (threshold 0.50); scores 0.98 0.91 0.12 0.99"."""
    return (f"{int(decisions.sum())}/{len(decisions)} images show {concept!r} (threshold {threshold:.2f}); "
            f"scores {' '.join(f'{s:.2f}' for s in scores.tolist())}")


def annotate(images: Any, scores: torch.Tensor, decisions: torch.Tensor) -> torch.Tensor:
    """Each image with its score drawn in a strip along the top: a bar as long as the score (green yes,
    red no) and the number. Pixels below the strip are left exactly as they were; shape (B, H, W, 3)."""
    from PIL import Image, ImageDraw, ImageFont

    out = as_image_batch(images).clone()
    _, h, w, _ = out.shape
    bar = min(h, max(3, h // 10))
    font = ImageFont.load_default(size=max(8, bar - 2)) if bar >= 10 else None  # too small to read below
    for image, score, yes in zip(out, scores.tolist(), decisions.tolist()):
        strip = Image.new("RGB", (w, bar), (20, 20, 20))
        draw = ImageDraw.Draw(strip)
        if round(score * w) > 0:
            draw.rectangle([0, 0, round(score * w) - 1, bar - 1], fill=(40, 180, 60) if yes else (200, 50, 40))
        if font is not None:
            draw.text((2, 0), f"{score:.2f} {'yes' if yes else 'no'}", fill=(255, 255, 255), font=font)
        image[:bar] = torch.from_numpy(np.asarray(strip, dtype=np.float32) / 255.0).to(image.device)
    return out
