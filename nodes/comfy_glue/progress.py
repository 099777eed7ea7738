"""ComfyUI progress for a sweep: one bar over every block's sampler steps and decode + judge chunks."""
from __future__ import annotations

import math

import comfy.utils
import latent_preview


class SweepProgress:
    """One ComfyUI progress bar over a whole sweep: each block counts its sampler steps and its decode +
    judge chunks; the preview shows one branch (the first seed of the block, its middle insertion step)."""

    def __init__(self, model, blocks: list[list[int]], n_ks: int, sampler_steps: int, max_batch: int):
        self.units = [sampler_steps + math.ceil(len(b) * n_ks / max_batch) for b in blocks]
        self.sampler_steps, self.block, self.n_ks = sampler_steps, 0, n_ks
        self.bar = comfy.utils.ProgressBar(max(1, sum(self.units)))
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)

    def _done_before(self) -> int:
        return sum(self.units[:self.block])

    def sampling(self, step: int, x0) -> None:
        row = self.n_ks // 2
        preview = None
        if self.previewer is not None and x0.shape[0] > row:
            preview = self.previewer.decode_latent_to_preview_image("JPEG", x0[row:row + 1])
        self.bar.update_absolute(self._done_before() + min(step + 1, self.sampler_steps), preview=preview)

    def judging(self, done: int, total: int) -> None:
        chunks = self.units[self.block] - self.sampler_steps if self.block < len(self.units) else 0
        self.bar.update_absolute(self._done_before() + self.sampler_steps + math.ceil(done / total * chunks))

    def next_block(self, *_) -> None:
        self.block += 1
