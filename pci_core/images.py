"""Images as ComfyUI passes them: the one check both the judges and the edit metrics use; and a PNG writer
for the command line's pictures."""
from __future__ import annotations

from typing import Any

from pathlib import Path

import numpy as np
import torch

RANGE_TOLERANCE = 1e-3  # image values this far outside [0, 1] are clamped (float round-off), farther is an error


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


def save_png(image: np.ndarray, path: Path, upscale: int = 8) -> None:
    """An (H, W, 3) float image in [0, 1] as a PNG, shown `upscale` times larger (nearest)."""
    from PIL import Image
    arr = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(arr).resize((arr.shape[1] * upscale, arr.shape[0] * upscale), Image.NEAREST).save(path)


def save_animated_webp(frames: np.ndarray, path: Path, fps: float = 16.0) -> None:
    """A clip (F, H, W, 3) float in [0, 1] as an animated WebP (what SaveAnimatedWEBP writes; PIL only)."""
    from PIL import Image
    arr = (np.clip(np.asarray(frames), 0, 1) * 255).round().astype(np.uint8)
    first, *rest = [Image.fromarray(f) for f in arr]
    path.parent.mkdir(parents=True, exist_ok=True)
    first.save(path, save_all=True, append_images=rest, duration=round(1000 / fps), loop=0, lossless=False, quality=90)
