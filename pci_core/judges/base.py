"""The judge interface and input checks shared by every backend.

    judge.score(images, concept, contrast=None) -> float tensor (B,) on the CPU, in [0, 1]
    judge.decide(scores, threshold=0.5)          -> bool tensor (B,): True where score >= threshold

Images are ComfyUI's IMAGE layout: a float tensor (B, H, W, 3) in [0, 1]; one (H, W, 3) image is a batch of one.
A batch of clips (B, F, H, W, 3) (a video model's sample per seed) gets one score per clip: the judge scores
clip_frames frames of each, evenly spaced (0: every frame), and combines them by its clip_rule (CLIP_RULES).
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from ..images import as_image_batch

BACKENDS = ("clip", "vqa")  # the demo world adds "rule" (pci_core.demo.rule_judge)
DEFAULT_CONTRAST = "a photo"
DEFAULT_CLIP_TEMPLATES = ("a photo of {}.",)
DEFAULT_VQA_QUESTION = "Is the {concept} visible in the image? Answer yes or no."
# A clip's verdict from its frames' scores: their mean, the share of frames the judge says yes to (score >= 0.5),
# the least (every frame must show it) or the most (one frame is enough).
CLIP_RULES = ("mean", "share of yes", "least", "most")
DEFAULT_CLIP_FRAMES = 8
YES_WORDS = ("yes", "Yes", "YES")  # P(yes) sums the probability of every spelling that is one token
NO_WORDS = ("no", "No", "NO")


def require(module: str, package: str, backend: str):
    """Import an optional dependency of a backend, or say which package to install where."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"the {backend} judge needs the Python package {package!r} ({e}); install it into the "
                          f"Python that runs ComfyUI: python -m pip install {package}") from e


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


def available_devices() -> list[str]:
    """The devices this machine's torch can run on, e.g. ['cpu', 'cuda:0']."""
    found = ["cpu"]
    for kind in ("cuda", "xpu"):
        backend = getattr(torch, kind, None)
        if backend is not None and backend.is_available():
            found += [f"{kind}:{i}" for i in range(backend.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def check_device(device: Any) -> torch.device:
    """A torch device this machine has; ValueError naming 'device' and the devices available otherwise."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r}: expected a torch device such as 'cpu', 'cuda' or 'cuda:0' "
                         f"({e})") from None
    available = available_devices()
    wanted = f"{device.type}:{device.index or 0}" if device.type in ("cuda", "xpu") else device.type
    if wanted not in available:
        raise ValueError(f"device '{device}': this machine has no such device; available: {', '.join(available)} "
                         f"(the loader's 'auto' picks ComfyUI's main device)")
    return device


def check_clip_rule(rule: Any, frames: Any) -> tuple[str, int]:
    if rule not in CLIP_RULES:
        raise ValueError(f"clip_rule {rule!r}: valid rules are {', '.join(repr(r) for r in CLIP_RULES)}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
        raise ValueError(f"clip_frames={frames!r}: how many frames of a clip to judge, evenly spaced (0 = every frame)")
    return rule, frames


def frame_indices(n: int, frames: int) -> list[int]:
    """`frames` frame indices of a clip of n, evenly spaced, first and last included (0 or >= n: all)."""
    if frames <= 0 or frames >= n:
        return list(range(n))
    if frames == 1:
        return [n // 2]
    return sorted({round(i * (n - 1) / (frames - 1)) for i in range(frames)})


def combine_frames(scores: torch.Tensor, rule: str) -> torch.Tensor:
    """One score per clip from its frames' scores (B, F), by a CLIP_RULES rule."""
    if rule == "mean":
        return scores.mean(dim=1)
    if rule == "share of yes":
        return (scores >= 0.5).float().mean(dim=1)
    if rule == "least":
        return scores.min(dim=1).values
    if rule == "most":
        return scores.max(dim=1).values
    raise ValueError(f"clip_rule {rule!r}: valid rules are {', '.join(repr(r) for r in CLIP_RULES)}")


def decide(scores: Any, threshold: float = 0.5) -> torch.Tensor:
    """Yes/no per image: True where score >= threshold (a score equal to the threshold is a yes)."""
    threshold = check_threshold(threshold)
    return torch.as_tensor(scores, dtype=torch.float32) >= threshold


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


class JudgeModel:
    """A judge's network, loaded once per (backend, weights, device, dtype) and shared by every judge over
    it: prompt templates and questions belong to the judge, not to the weights, so a new template never
    loads another copy. place() answers, before every batch, the device to run it on: the module's own by
    default; a host that manages memory (the pack's ComfyUI glue: comfy.model_management) sets `placement`
    to load the module there first and to let the host offload it when other models need the room."""

    def __init__(self, module: torch.nn.Module, device: torch.device, offload: torch.device | None = None,
                 dtype: torch.dtype | None = None):
        """module kept on `offload` when given (a host places it on `device` itself), else moved to device;
        dtype: what it computes in (default: its first weight's; open_clip keeps some weights in float32)."""
        self.module = module.to(offload or device).eval().requires_grad_(False)
        self.device = device
        self.dtype = dtype or next(module.parameters()).dtype
        self.placement = None  # () -> torch.device, set by a host

    def place(self) -> torch.device:
        return self.device if self.placement is None else self.placement()


class Judge:
    """Base of every judge: checks inputs, then asks the backend's _score for (B,) scores in [0, 1]
    (checked, never clamped: a score outside [0, 1] or NaN is a RuntimeError naming the backend)."""

    name = "judge"
    clip_rule, clip_frames = "mean", DEFAULT_CLIP_FRAMES  # set per judge by set_clip_rule

    def set_clip_rule(self, rule: str, frames: int) -> "Judge":
        self.clip_rule, self.clip_frames = check_clip_rule(rule, frames)
        return self

    def clip_rule_text(self) -> str:
        return f"{self.clip_rule} of {self.clip_frames or 'every'} frame(s), evenly spaced"

    def score(self, images: Any, concept: str, contrast: str | None = None) -> torch.Tensor:
        """Scores (B,) float32 on the CPU, in [0, 1]: how much each image shows the concept; for clips
        (B, F, H, W, 3), one score per clip from its frames (the judge's clip rule). contrast (e.g. the base
        prompt) is what the concept is told apart from; None or blank uses the backend's default. The rule
        and vqa judges ignore it."""
        if isinstance(images, torch.Tensor) and images.ndim == 5:
            pick = frame_indices(images.shape[1], self.clip_frames)
            frames = self.score(images[:, pick].reshape(-1, *images.shape[2:]), concept, contrast)
            return combine_frames(frames.reshape(images.shape[0], len(pick)), self.clip_rule)
        batch = as_image_batch(images)
        concept = check_text(concept, "concept")
        if contrast is None or (isinstance(contrast, str) and not contrast.strip()):
            contrast = None  # the backend's default
        else:
            contrast = check_text(contrast, "contrast")
        with torch.no_grad():
            scores = self._score(batch, concept, contrast)
        return self._checked(scores.detach().float().cpu(), len(batch))

    def _checked(self, scores: torch.Tensor, n: int) -> torch.Tensor:
        """The backend's scores as they are: never clamped, so a backend returning logits or NaN fails
        here, loudly, instead of being hidden as 0 or 1."""
        if scores.shape != (n,):
            raise RuntimeError(f"the {self.name} judge ({self.describe()}) returned scores of shape "
                               f"{tuple(scores.shape)} for {n} images; a judge returns one score per image")
        bad = ~((scores >= 0.0) & (scores <= 1.0))  # NaN fails both comparisons
        if bad.any():
            raise RuntimeError(f"the {self.name} judge ({self.describe()}) returned {int(bad.sum())} score(s) "
                               f"outside [0, 1] (e.g. {scores[bad][0].item():.4g}); a judge returns probabilities, "
                               f"not logits (a bug in that backend)")
        return scores

    def decide(self, scores: Any, threshold: float = 0.5) -> torch.Tensor:
        """Yes/no per image: True where score >= threshold (a score equal to the threshold is a yes)."""
        return decide(scores, threshold)

    def _score(self, images: torch.Tensor, concept: str, contrast: str | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def describe(self) -> str:
        return self.name


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
