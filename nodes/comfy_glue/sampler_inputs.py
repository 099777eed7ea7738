"""The sampler inputs of the PCI nodes, declared once: one default, one range and one tooltip each, so the
nodes that sample (Concept Insertion Sampler, CIS Sweep, CIS Study, Best Timestep Edit) cannot drift apart.
Values ComfyUI's widgets cannot check (an API prompt may send anything) are checked where they are used,
once: sweep_plan (seeds, insertion steps, steps of a sweep, max_batch), insertion (insert_step),
Sampling.for_latent (max_batch 0 = auto)."""
from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from ...pci_core import sweep_plan

MAX_STEPS = 10000


def noise_seed() -> io.Int.Input:
    """One image's seed, as KSampler's (changes after each queue when the user asks for it)."""
    return io.Int.Input("seed", default=0, min=0, max=sweep_plan.MAX_SEED, control_after_generate=True,
                        tooltip="The random seed of the noise, as KSampler's")


def seed_set() -> list:
    """A sweep's seeds: seed_count seeds from seed on, or an explicit list (sweep_plan.seeds_of reads them).
    No control_after_generate: a re-queue with the same seeds resumes the run."""
    return [
        io.Int.Input("seed", default=0, min=0, max=sweep_plan.MAX_SEED, tooltip="First seed (used when seed_list "
                     "is empty)"),
        io.Int.Input("seed_count", default=16, min=1, max=sweep_plan.MAX_SEEDS, tooltip="How many seeds from seed on "
                     "(used when seed_list is empty)"),
        io.String.Input("seed_list", default="", tooltip="Explicit seeds instead, e.g. '1,5,9-20' (ranges inclusive)"),
    ]


def steps(least: int = 1) -> io.Int.Input:
    """Denoising steps; a sweep passes sweep_plan.MIN_SWEEP_STEPS (k = 0 and k = steps are its controls)."""
    note = f" (at least {least}: k = 0 and k = steps are the controls)" if least > 1 else ""
    return io.Int.Input("steps", default=20, min=least, max=MAX_STEPS, tooltip="Denoising steps T, as KSampler's"
                        + note)


def cfg() -> io.Float.Input:
    return io.Float.Input("cfg", default=4.0, min=0.0, max=100.0, step=0.1, round=0.01,
                          tooltip="Classifier-free guidance scale, as KSampler's")


def sampler_name() -> io.Combo.Input:
    return io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS,
                          tooltip="Any ComfyUI sampler, as KSampler's; the switch lands on step k for each")


def scheduler() -> io.Combo.Input:
    return io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                          tooltip="Any ComfyUI scheduler, as KSampler's")


def max_batch() -> io.Int.Input:
    return io.Int.Input("max_batch", default=0, min=0, max=4096,
                        tooltip="Most rows per model call, decode and judge batch; 0 = auto (the largest power of two "
                                "up to 64 that fits half the device's free memory); lower it if memory runs out")


def threshold() -> io.Float.Input:
    return io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.01,
                          tooltip="A judge score >= threshold counts as 'concept visible'; strictly between 0 and 1")
