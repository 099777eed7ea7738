"""The ComfyUI internals the pack calls, in one list, checked when the pack loads; and the few calls whose
shape changed between ComfyUI v0.3.64 and today's (0.38), each chosen by feature detection.

Each entry names the internal, how the pack calls it (a call that must bind to its signature) and the
nodes that need it. At load every entry is resolved and its call bound; a missing or changed one is one
log line naming it and ComfyUI's version, and the nodes that need it fail with that line when queued
(require), not with a TypeError in the middle of a run. README "ComfyUI versions" says which internal
was run on which version and which was read.
"""
from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass

SAMPLING = ("ConceptInsertionSampler", "CISSweep", "CISStudy", "BestTimestepEdit")
JUDGING = ("PCIJudgeLoader", "CISJudge", "CISSweep", "CISStudy", "BestTimestepEdit")
DEMO = ("PCIDemoModelLoader", "PCIJudgeLoader")
ANY = object()  # a stand-in argument: binding checks names and arity, never values


@dataclass(frozen=True)
class Internal:
    name: str                     # module.attribute[.attribute]
    args: tuple = ()              # positional arguments of the pack's call
    kwargs: tuple = ()            # keyword argument names of the pack's call
    nodes: tuple = SAMPLING
    call: bool = True             # False: only its presence is needed (a class subclassed, a constant)


INTERNALS = (
    Internal("comfy.samplers.KSampler", (ANY,), ("steps", "device", "sampler", "scheduler", "denoise", "model_options")),
    Internal("comfy.samplers.CFGGuider", (ANY,)),
    Internal("comfy.samplers.CFGGuider.predict_noise", (ANY, ANY, ANY, ANY)),
    Internal("comfy.samplers.CFGGuider.sample", (ANY, ANY, ANY, ANY), ("denoise_mask", "callback", "disable_pbar", "seed")),
    Internal("comfy.samplers.CFGGuider.inner_set_conds", (ANY,)),
    Internal("comfy.samplers.sampling_function", (ANY, ANY, ANY, ANY, ANY, ANY), ("model_options", "seed")),
    Internal("comfy.samplers.KSAMPLER", (ANY, ANY, ANY)),
    Internal("comfy.samplers.KSAMPLER.sample", (ANY, ANY, ANY, ANY, ANY, ANY, ANY, ANY)),
    Internal("comfy.samplers.sampler_object", (ANY,)),
    Internal("comfy.sample.fix_empty_latent_channels", (ANY, ANY)),
    Internal("comfy.sample.prepare_noise", (ANY, ANY, ANY)),
    Internal("comfy.k_diffusion.sampling.BrownianTreeNoiseSampler", (ANY, ANY, ANY), ("seed", "cpu")),
    Internal("comfy.k_diffusion.sampling.default_noise_sampler", (ANY,), ("seed",)),
    Internal("comfy.model_patcher.set_model_options_post_cfg_function", (ANY, ANY)),
    Internal("comfy.model_patcher.ModelPatcher", (ANY,), ("load_device", "offload_device"), JUDGING + DEMO),
    Internal("comfy.model_management.throw_exception_if_processing_interrupted", (), (), SAMPLING + JUDGING),
    Internal("comfy.model_management.InterruptProcessingException", nodes=SAMPLING, call=False),
    Internal("comfy.model_management.load_models_gpu", (ANY,), ("force_full_load",), JUDGING),
    Internal("comfy.model_management.get_free_memory", (ANY,)),
    Internal("comfy.model_management.vram_state", nodes=JUDGING, call=False),
    Internal("comfy.model_management.VRAMState.NO_VRAM", nodes=JUDGING, call=False),
    Internal("comfy.model_management.intermediate_device", ()),
    Internal("comfy.model_management.get_torch_device", (), (), SAMPLING + JUDGING + DEMO),
    Internal("comfy.model_management.text_encoder_offload_device", (), (), JUDGING),
    Internal("comfy.model_management.should_use_fp16", (ANY,), (), JUDGING),
    Internal("comfy.model_management.should_use_bf16", (ANY,), (), JUDGING),
    Internal("comfy.model_management.unet_dtype", (), ("model_params", "supported_dtypes"), DEMO),
    Internal("comfy.model_management.unet_manual_cast", (ANY, ANY, ANY), (), DEMO),
    Internal("comfy.model_management.unet_offload_device", (), (), DEMO),
    Internal("comfy.model_management.vae_offload_device", (), (), DEMO),
    Internal("comfy.utils.ProgressBar", (ANY,)),
    Internal("comfy.utils.PROGRESS_BAR_ENABLED", call=False),
    Internal("latent_preview.prepare_callback", (ANY, ANY)),
    Internal("latent_preview.get_previewer", (ANY, ANY), (), ("CISSweep",)),
    Internal("comfy.model_base.BaseModel", (ANY, ANY), ("unet_model",), DEMO),
    Internal("comfy.supported_models_base.BASE", nodes=DEMO, call=False),
    Internal("comfy.supported_models_base.ClipTarget", (ANY, ANY), (), DEMO),
    Internal("comfy.sd.CLIP", (), ("target", "model_options"), DEMO),
    Internal("comfy.sd.VAE", (), ("sd",), DEMO),
    Internal("comfy.sd1_clip.token_weights", (ANY, ANY), (), DEMO),
    Internal("comfy.latent_formats.LatentFormat", nodes=DEMO, call=False),
    Internal("folder_paths.get_filename_list", (ANY,), (), JUDGING + DEMO),
    Internal("folder_paths.get_full_path", (ANY, ANY), (), JUDGING + DEMO),
    Internal("folder_paths.add_model_folder_path", (ANY, ANY), (), JUDGING + DEMO),
    Internal("folder_paths.get_folder_paths", (ANY,), (), JUDGING + DEMO),
    Internal("folder_paths.models_dir", nodes=JUDGING + DEMO, call=False),
    Internal("folder_paths.supported_pt_extensions", nodes=JUDGING, call=False),
    Internal("folder_paths.get_input_directory", (), (), ("BestTimestepEdit",)),
    Internal("folder_paths.get_output_directory", (), (), ("CISSweep", "CISStudy")),
)

_problems: dict[str, str] = {}  # internal name -> what is wrong, filled by check()


def resolve(name: str):
    """The object a dotted name points to (the longest importable module prefix, then attributes)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    return importlib.import_module(name)


def problem(internal: Internal) -> str | None:
    """What is wrong with one internal here (absent, or the pack's call no longer binds), or None."""
    try:
        obj = resolve(internal.name)
    except (ImportError, AttributeError) as e:
        return f"{internal.name} is missing ({e})"
    if not internal.call:
        return None
    try:
        target = obj.__init__ if inspect.isclass(obj) else obj
        signature = inspect.signature(target)
        args = (ANY, *internal.args) if inspect.isclass(obj) or _unbound_method(internal.name, obj) else internal.args
        signature.bind(*args, **{k: ANY for k in internal.kwargs})
    except (TypeError, ValueError) as e:
        return f"{internal.name}{_shown(internal)} no longer binds to {internal.name}{_signature(obj)} ({e})"
    return None


def _unbound_method(name: str, obj) -> bool:
    owner = name.rsplit(".", 1)[0]
    try:
        return inspect.isclass(resolve(owner)) and inspect.isfunction(obj)
    except (ImportError, AttributeError):
        return False


def _shown(internal: Internal) -> str:
    return "(" + ", ".join(["_"] * len(internal.args) + [f"{k}=_" for k in internal.kwargs]) + ")"


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj.__init__ if inspect.isclass(obj) else obj))
    except (TypeError, ValueError):
        return "(?)"


def comfyui_version() -> str:
    try:
        return importlib.import_module("comfyui_version").__version__
    except (ImportError, AttributeError):
        return "unknown"


def check(internals=INTERNALS) -> dict[str, str]:
    """Every internal checked (at load); one log line per problem; returns {name: problem}."""
    _problems.clear()
    for internal in internals:
        found = problem(internal)
        if found:
            _problems[internal.name] = found
            logging.warning(f"PCI: ComfyUI {comfyui_version()}: {found}; the nodes that need it "
                            f"({', '.join(internal.nodes)}) will refuse to run")
    return dict(_problems)


def require(node: str, internals=INTERNALS) -> None:
    """Before a node runs: RuntimeError naming every internal it needs that the load-time check found
    missing or changed, and ComfyUI's version."""
    found = [_problems[i.name] for i in internals if node in i.nodes and i.name in _problems]
    if found:
        raise RuntimeError(f"{node} cannot run on ComfyUI {comfyui_version()}: " + "; ".join(found)
                           + ". Update the PCI pack (or report this with ComfyUI's version).")


# ---------------------------------------------------------------- calls whose shape changed, by feature

def empty_latent(model, latent: dict):
    """The latent KSampler would sample, from a LATENT dict, at this ComfyUI: today's
    fix_empty_latent_channels(model, latent, downscale_ratio_spacial, downscale_ratio_temporal) rescales an
    empty latent made for another downscale ratio (EmptyLatentImage writes its ratio into the dict);
    v0.3.64's takes (model, latent) and knows no ratios."""
    import comfy.sample
    fix = comfy.sample.fix_empty_latent_channels
    accepted = inspect.signature(fix).parameters
    extra = [latent.get(key) for key in ("downscale_ratio_spacial", "downscale_ratio_temporal") if key in accepted]
    return fix(model, latent["samples"], *extra)


def sampled_latent(latent: dict, samples) -> dict:
    """The output LATENT as KSampler makes it: the input dict with the new samples, without the downscale
    ratio keys today's KSampler removes (they described the empty latent, not the result)."""
    out = {k: v for k, v in latent.items() if k not in ("downscale_ratio_spacial", "downscale_ratio_temporal")}
    out["samples"] = samples
    return out


def free_memory(model_patcher) -> int:
    """Bytes free for a model's work on its device: today's ModelPatcher.get_free_memory(device) counts the
    memory dynamic-VRAM models would give up; v0.3.64 has only model_management.get_free_memory."""
    import comfy.model_management
    device = model_patcher.load_device
    if callable(getattr(model_patcher, "get_free_memory", None)):
        return model_patcher.get_free_memory(device)
    return comfy.model_management.get_free_memory(device)
