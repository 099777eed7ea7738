"""The one-pass reference for an insertion at step k: ComfyUI's own ConditioningSetTimestepRange
graph (base on [0, p], concept on [p, 1]) with p the percent whose sigma is the insertion boundary."""
from __future__ import annotations


def percent_for_sigma(model_sampling, sigma: float) -> float:
    """start_percent whose model_sampling.percent_to_sigma is `sigma`, for any model sampling
    (discrete log-sigma, SD3 / FLUX flow shifts): bisection on ComfyUI's own monotone map."""
    lo, hi = 0.0, 1.0  # percent_to_sigma falls from sigma_max to 0
    for _ in range(60):
        mid = (lo + hi) / 2
        if model_sampling.percent_to_sigma(mid) > sigma:
            lo = mid
        else:
            hi = mid
    return hi


def ranged_conditioning(core, model_patcher, base, concept, boundary: float):
    """base for sigma above `boundary`, concept below, as core ConditioningSetTimestepRange nodes."""
    p = percent_for_sigma(model_patcher.get_model_object("model_sampling"), boundary)
    return core.ConditioningCombine().combine(core.ConditioningSetTimestepRange().set_range(base, 0.0, p)[0],
                                              core.ConditioningSetTimestepRange().set_range(concept, p, 1.0)[0])[0]


def insertion_and_range(host, model, base, concept, negative, latent, seed, steps, cfg, sampler, scheduler, k):
    """(ConceptInsertionSampler latent, one-pass ConditioningSetTimestepRange KSampler latent)."""
    import comfy.samplers
    import nodes as core
    from pci_core import schedule

    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    inserted = node.execute(model, base, concept, negative, latent, seed, steps, cfg, sampler, scheduler, float(k),
                            1.0).args[0]["samples"]
    sigmas = comfy.samplers.KSampler(model, steps, "cpu", sampler, scheduler, 1.0).sigmas
    ranged = ranged_conditioning(core, model, base, concept, schedule.insertion_boundary(sigmas, k))
    reference = core.common_ksampler(model, seed, steps, cfg, sampler, scheduler, ranged, negative, latent)[0]["samples"]
    return inserted, reference
