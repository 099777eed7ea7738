"""Edit metrics (images are ComfyUI IMAGE tensors (B, H, W, 3) in [0, 1]): edit success is the judge's
score on the edit text; SSIM and PSNR come from torchmetrics; with a CLIP judge, the paper's CLIP_img
(cosine of image embeddings, source vs edit), CLIP_txt (cosine of the edited image and the edit text)
and CLIP_dir (cosine between the image-embedding change and the text-embedding change)."""
from __future__ import annotations

import torch

from .images import as_image_batch


def _nchw(images: torch.Tensor) -> torch.Tensor:
    return as_image_batch(images).movedim(-1, 1)


def ssim(source: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """SSIM per image pair (B,) (torchmetrics, Gaussian window 11, data range 1)."""
    from torchmetrics.functional.image import structural_similarity_index_measure
    return structural_similarity_index_measure(_nchw(edited), _nchw(source), data_range=1.0, reduction="none")


def psnr(source: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image pair (B,) (torchmetrics, data range 1; identical images give inf)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio
    return peak_signal_noise_ratio(_nchw(edited), _nchw(source), data_range=1.0, reduction="none", dim=(1, 2, 3))


def edit_success(judge, edited: torch.Tensor, edit_text: str, contrast: str | None = None) -> torch.Tensor:
    """The judge's score (B,) of the edited images on the edit text (contrast: e.g. the source text, for CLIP)."""
    return judge.score(edited, edit_text, contrast)


def _clip(judge):
    if not (hasattr(judge, "image_embeddings") and hasattr(judge, "text_embedding")):
        raise ValueError(f"judge {judge!r}: the CLIP metrics need a clip judge (PCI Judge Loader, backend clip)")
    return judge


def clip_image_similarity(judge, source: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """CLIP_img (B,): cosine between the image embeddings of source and edit."""
    judge = _clip(judge)
    with torch.no_grad():
        a = judge.image_embeddings(_nchw(source).movedim(1, -1))
        b = judge.image_embeddings(_nchw(edited).movedim(1, -1))
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).cpu()


def clip_text_similarity(judge, edited: torch.Tensor, edit_text: str) -> torch.Tensor:
    """CLIP_txt (B,): cosine between the edited image's embedding and the edit text's."""
    judge = _clip(judge)
    with torch.no_grad():
        image, text = judge.image_embeddings(_nchw(edited).movedim(1, -1)), judge.text_embedding(edit_text)
    return torch.nn.functional.cosine_similarity(image, text[None], dim=-1).cpu()


def clip_directional_similarity(judge, source: torch.Tensor, edited: torch.Tensor, source_text: str,
                                edit_text: str) -> torch.Tensor:
    """CLIP_dir (B,): cosine between E_img(edit) - E_img(source) and E_txt(edit text) - E_txt(source text)."""
    judge = _clip(judge)
    with torch.no_grad():
        image_change = judge.image_embeddings(_nchw(edited).movedim(1, -1)) - judge.image_embeddings(
            _nchw(source).movedim(1, -1))
        text_change = judge.text_embedding(edit_text) - judge.text_embedding(source_text)
    return torch.nn.functional.cosine_similarity(image_change, text_change[None], dim=-1).cpu()
