"""Concept insertion inside ComfyUI's sampler: a CFG guider whose positive conditioning switches from
base to concept by sigma (pci_core.insertion's branching denoiser over ComfyUI's sampling_function)."""
from __future__ import annotations

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from ...pci_core import insertion, schedule
from . import internals
from .sampling import Sampling, check_conditionings


class ConceptInsertionGuider(comfy.samplers.CFGGuider):
    """CFG guider whose positive conditioning switches from base to concept by sigma.

    Each model evaluation goes through ComfyUI's sampling_function (CFG, area conds, ControlNet,
    model patches), once for the rows still on the base and once for the rows on the concept."""

    def __init__(self, model_patcher, base, concept, negative, cfg: float, boundaries: torch.Tensor,
                 lineage: torch.Tensor, max_batch: int | None = None, counter: insertion.EvalCounter | None = None):
        super().__init__(model_patcher)
        self.inner_set_conds({"positive": base, "concept": concept, "negative": negative})
        self.set_cfg(cfg)
        self.boundaries, self.lineage, self.max_batch, self.counter = boundaries, lineage, max_batch, counter

    def sample(self, *args, **kwargs):
        self._branching = None  # lineage restarts with every run
        return super().sample(*args, **kwargs)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if self._branching is None:
            def denoise_with(rows_x, rows_sigma, use_concept):
                positive = self.conds.get("concept" if use_concept else "positive")
                return comfy.samplers.sampling_function(self.inner_model, rows_x, rows_sigma, self.conds.get("negative"),
                                                        positive, self.cfg, model_options=model_options, seed=seed)
            self._branching = insertion.branching_denoiser(denoise_with, self.boundaries, self.lineage,
                                                           self.max_batch, self.counter)
        return self._branching(x, timestep)


def concept_insertion_sample(sampling: Sampling, seed: int, base, concept, latent: dict, insert_step,
                             denoise: float = 1.0) -> dict:
    """KSampler with the positive prompt switched from base to concept at insert_step.

    As KSampler: a latent batch of B draws its noise from the one seed (row i is not seed + i), and
    with denoise < 1 the steps (and insert_step) count the steps actually run."""
    check_conditionings(base=base, concept=concept, negative=sampling.negative)
    k = insertion.resolve_insert_step(insert_step, sampling.steps)
    latent_image = internals.empty_latent(sampling.model, latent)
    sigmas = sampling.sigmas(denoise)
    if len(sigmas) == 0:  # denoise 0: as KSampler, the latent comes back unchanged
        return internals.sampled_latent(latent, latent_image.to(comfy.model_management.intermediate_device()))
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    if k == sampling.steps:  # base only, even where the scheduler runs an extra step (ddim_uniform does)
        k = len(sigmas) - 1
    batch = latent_image.shape[0]
    # The switch is decided on the host (see insertion.branching_denoiser): boundaries and lineage on the CPU.
    boundaries = torch.full((batch,), schedule.insertion_boundary(sigmas, k), dtype=torch.float64, device="cpu")
    guider = ConceptInsertionGuider(sampling.model, base, concept, sampling.negative, sampling.cfg, boundaries,
                                    torch.arange(batch, device="cpu"))
    callback = latent_preview.prepare_callback(sampling.model, len(sigmas) - 1)
    samples = guider.sample(noise, latent_image, comfy.samplers.sampler_object(sampling.sampler_name), sigmas,
                            denoise_mask=latent.get("noise_mask"), callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    return internals.sampled_latent(latent, samples.to(comfy.model_management.intermediate_device()))
