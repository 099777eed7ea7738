"""BestTimestepEdit: pick the step k at which the edit prompt takes over (from a CIS result, a quick
probe over helper seeds, or the edit itself made at every k), make the edit of a seed or of an input
image, and say why that k."""
import logging

import comfy.model_management
import comfy.samplers
import comfy.utils
import torch
from comfy_api.latest import io

from ..pci_core import cis, editing, plots
from . import host
from .judge import Judge
from .sweep import CISResultType


class BestTimestepEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="BestTimestepEdit",
            display_name="Best Timestep Edit",
            category="PCI",
            description="Edit an image made from the source prompt by switching to the edit prompt at step k: too "
                        "early regenerates the image, too late misses the edit. k comes from a CIS result or a quick "
                        "probe over helper seeds, by a stated rule; or, rule 'latest yes', per image: the edit is "
                        "made at every k for this seed (or input image) and k is the latest step the judge sees it "
                        "(costs one sweep of one seed: T + sum(T-k) model rows, then the edit). With an input image, "
                        "the image is inverted with the source prompt to step k's noise level and finished with the "
                        "edit prompt.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model"),
                io.Conditioning.Input("source", tooltip="Positive conditioning of the source (what the image shows)"),
                io.Conditioning.Input("edit", tooltip="Positive conditioning of the edit (the source text with the "
                                      "change made)"),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, used throughout"),
                io.Latent.Input("latent_image", tooltip="Empty latent of the output size (seed edits and the probe); "
                                "ignored for an input image except by the probe"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the source image (and of the sampler's noise); the probe uses seeds "
                                     "seed+1 .. seed+probe_seeds"),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Denoising steps T"),
                io.Float.Input("cfg", default=4.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale"),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS,
                               tooltip="Sampler; deterministic ones (euler, ddim, dpmpp_2m) keep the most of an "
                                       "inverted input image"),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="Noise schedule"),
                io.Vae.Input("vae", tooltip="VAE to decode the results (and encode an input image)"),
                io.Combo.Input("rule", options=list(editing.RULES), default="tau",
                               tooltip="tau: k = the last whole step where CIS is still >= level; best score: k "
                                       "maximising weight*edit success + (1-weight)*preservation over the probe; "
                                       "fixed: k = fixed_k; latest yes: the edit made at every k for this seed "
                                       "(or input image), k = the latest step whose result the judge says shows "
                                       "judge_text (keeps the most of the source; 0 if it never takes). Costs T + "
                                       "sum(T-k) model rows (one seed's sweep) before the edit; needs a judge"),
                io.Float.Input("level", default=editing.DEFAULT_LEVEL, min=0.0, max=1.0, step=0.05,
                               tooltip="tau rule: CIS level. 0.5 = the latest step in the paper's window CIS "
                                       "0.5-0.7 (or just before it when the window holds no whole step); higher "
                                       "levels make the edit surer and keep less"),
                io.Float.Input("weight", default=editing.DEFAULT_WEIGHT, min=0.0, max=1.0, step=0.05,
                               tooltip="best score rule: weight of edit success against preservation (SSIM to "
                                       "the source)"),
                io.Int.Input("fixed_k", default=10, min=0, max=10000, tooltip="fixed rule: the insertion step "
                             "(0 = regenerate with the edit prompt, steps = keep the source)"),
                io.Int.Input("probe_seeds", default=4, min=1, max=256, tooltip="Helper seeds the probe runs (every "
                             "k for each, in one batched sampler run); used when a judge is connected"),
                io.String.Input("judge_text", default="", tooltip="Probe: what the judge looks for in an edited "
                                "image, e.g. 'blue' or 'an old person'"),
                CISResultType.Input("cis_result", optional=True, tooltip="From CISSweep (same steps, sampler and "
                                    "scheduler): CIS(k) of the source -> edit prompts, for the tau rule"),
                Judge.Input("judge", optional=True, tooltip="Probe judge (PCI Judge Loader): needed for the best "
                            "score and latest yes rules, and for the tau rule without cis_result"),
                io.String.Input("contrast", optional=True, default="", tooltip="clip judge: what judge_text is told "
                                "apart from, e.g. the source text (empty: 'a photo')"),
                io.Image.Input("image", optional=True, tooltip="An image to edit instead of the seed's source: "
                               "inverted with the source prompt to step k, then finished with the edit prompt"),
                io.Float.Input("inversion_cfg", optional=True, default=1.0, min=0.0, max=100.0, step=0.1,
                               tooltip="Input image: guidance scale of the inversion (1 = the source prompt "
                                       "alone, the usual DDIM-inversion choice)"),
            ],
            outputs=[
                io.Image.Output("edited", display_name="edited", tooltip="The edited image(s)"),
                io.Image.Output("source_image", display_name="source", tooltip="The source: the seed's image with "
                                "the source prompt alone, or the input image"),
                io.Int.Output("k", display_name="k", tooltip="The chosen insertion step"),
                io.Image.Output("plot", display_name="plot", tooltip="Edit success and preservation per candidate "
                                "step, the chosen k marked"),
                io.String.Output("explanation", display_name="explanation", tooltip="Which rule chose k and why"),
            ],
        )

    @classmethod
    def execute(cls, model, source, edit, negative, latent_image, seed, steps, cfg, sampler_name, scheduler, vae,
                rule, level, weight, fixed_k, probe_seeds, judge_text, cis_result=None, judge=None, contrast="",
                image=None, inversion_cfg=1.0) -> io.NodeOutput:
        host.check_conditionings(source=source, edit=edit, negative=negative)
        if image is not None:
            host.check_image_for_vae(image, vae)
        if host.same_conditioning(source, edit):
            return cls._unchanged(model, vae, latent_image, source, negative, seed, steps, cfg, sampler_name,
                                  scheduler, image)
        if rule == "fixed":
            editing.check_step(fixed_k, steps, "fixed_k")
        sigmas = host.sampler_sigmas(model, steps, sampler_name, scheduler, 1.0)
        if cis_result is not None:
            editing.check_matching_run(cis_result, steps, sampler_name, scheduler, host.step_sigmas(sigmas, steps))
        needs_probe = rule in ("best score", "latest yes") or (rule == "tau" and cis_result is None)
        if needs_probe and judge is None:
            what, other = {"best score": ("needs edit success and preservation per step", "or use rule tau with a "
                                                                                          "cis_result"),
                           "latest yes": ("needs the judge's reading of the edit at every step", "or use rule fixed"),
                           }.get(rule, ("without cis_result needs CIS per step", "or connect cis_result"))
            raise ValueError(f"judge: rule {rule!r} {what}: connect a PCI Judge Loader to judge (the node probes "
                             f"with it), {other}")
        bar = comfy.utils.ProgressBar(3)
        decisions, probe_result = None, None
        if rule == "latest yes":
            ks, success, kept, decisions = cls._every_k_of_this_edit(model, vae, judge, latent_image, image, source,
                                                                     edit, negative, seed, steps, cfg, sampler_name,
                                                                     scheduler, judge_text, contrast, inversion_cfg)
        else:
            ks, success, kept, probe_result = cls._curves(model, vae, judge, latent_image, source, edit, negative,
                                                          seed, steps, cfg, sampler_name, scheduler, probe_seeds,
                                                          judge_text, contrast, cis_result, sigmas)
        bar.update_absolute(1)
        measurements = cis_result if cis_result is not None else probe_result
        choice = editing.choose_step(rule, steps, result=measurements, level=level, ks=ks, edit_success=success,
                                     preservation=kept, weight=weight, fixed_k=fixed_k, decisions=decisions,
                                     what=f"seed {seed}" if image is None else "the input image")
        comfy.model_management.throw_exception_if_processing_interrupted()
        if image is None:
            edited, source_image = host.edit_seed(model, vae, latent_image, source, edit, negative, seed, steps, cfg,
                                                  sampler_name, scheduler, choice.k)
            how = f"seed {seed}: " + ("the edit prompt at every step (regenerated)" if choice.k == 0 else
                                       f"source prompt for steps 0..{choice.k - 1}, edit prompt from step {choice.k}")
        else:
            edited = host.edit_image(model, vae, image, source, edit, negative, seed, steps, cfg, sampler_name,
                                     scheduler, choice.k, inversion_cfg)
            source_image = image[:, :, :, :3].float().cpu()
            how = (f"input image: inverted with the source prompt (euler, cfg {inversion_cfg}) to the noise level of "
                   f"step {choice.k}, then steps {choice.k}..{steps} with the edit prompt")
        bar.update_absolute(3)
        if decisions is not None:
            measured = (f"the edit of seed {seed} (first image of the batch) made at every k in one sampler run"
                        if image is None else "the input image inverted to every k and finished with the edit "
                        "prompt from each") + f", judged on {judge_text!r}"
            success_label = "judge score (this edit)"
        elif probe_result is not None:
            measured = "probe over seeds " + ", ".join(str(s) for s in cls._probe_seeds(seed, probe_seeds))
            success_label = "edit success (probe)"
        else:
            measured = "cis_result" if cis_result is not None else "no measurements"
            success_label = "CIS (cis_result)"
        plot = plots.edit_candidates_plot(ks or [choice.k], success, kept, choice.k, steps, choice.rule,
                                          success_label=success_label,
                                          preservation_label="preservation (SSIM to source)")
        return io.NodeOutput(edited, source_image, choice.k, torch.from_numpy(plot)[None],
                             f"{choice.reason}\nMeasured by: {measured}.\nEdit: {how}.")

    @staticmethod
    def _probe_seeds(seed: int, n: int) -> list[int]:
        return [(seed + 1 + i) % 0x10000000000000000 for i in range(n)]

    @staticmethod
    def _check_judge_text(judge_text: str) -> None:
        if not judge_text.strip():
            raise ValueError("judge_text: empty; say what the judge should see in an edited image, e.g. 'blue'")

    @classmethod
    def _every_k_of_this_edit(cls, model, vae, judge, latent_image, image, source, edit, negative, seed, steps, cfg,
                              sampler_name, scheduler, judge_text, contrast, inversion_cfg):
        """(ks, judge score, SSIM to the source, decisions) of the edit being made, at every k: the seed's
        branching sweep (one sampler run), or the input image inverted to every level and finished from each."""
        cls._check_judge_text(judge_text)
        bar = comfy.utils.ProgressBar(steps + 1)
        if image is None:
            scores, kept, _ = host.probe_edit(model, vae, judge, latent_image["samples"], source, edit, negative,
                                              [seed], steps, cfg, sampler_name, scheduler, judge_text, contrast or None,
                                              progress=lambda step, x0: bar.update_absolute(step + 1))
        else:
            scores, kept = host.probe_image_edit(model, vae, judge, image, source, edit, negative, seed, steps, cfg,
                                                 sampler_name, scheduler, inversion_cfg, judge_text, contrast or None,
                                                 progress=lambda k, total: bar.update_absolute(k + 1))
        return (list(range(steps + 1)), scores.mean(axis=0).tolist(), kept.mean(axis=0).tolist(),
                scores >= editing.JUDGE_THRESHOLD)

    @classmethod
    def _curves(cls, model, vae, judge, latent_image, source, edit, negative, seed, steps, cfg, sampler_name,
                scheduler, probe_seeds, judge_text, contrast, cis_result, sigmas):
        """(ks, edit success, preservation, probe CISResult) per candidate step; Nones where unmeasured."""
        if judge is not None:
            cls._check_judge_text(judge_text)
            seeds = cls._probe_seeds(seed, probe_seeds)
            bar = comfy.utils.ProgressBar(steps)
            scores, kept, _ = host.probe_edit(model, vae, judge, latent_image["samples"], source, edit, negative, seeds,
                                              steps, cfg, sampler_name, scheduler, judge_text, contrast or None,
                                              progress=lambda step, x0: bar.update_absolute(step + 1))
            ks = list(range(steps + 1))
            result = cis.CISResult(seeds, ks, steps, host.step_sigmas(sigmas, steps), scores, 0.5, judge_text,
                                   {"sampler": sampler_name, "scheduler": scheduler, "cfg": float(cfg)})
            success, preservation = editing.probe_curves(scores, kept)
            return ks, success.tolist(), preservation.tolist(), result
        if cis_result is not None:
            return list(cis_result.ks), cis.cis_curve(cis_result.decisions).tolist(), None, None
        return None, None, None, None

    @classmethod
    def _unchanged(cls, model, vae, latent_image, source, negative, seed, steps, cfg, sampler_name, scheduler, image):
        message = "source and edit conditioning are the same: there is nothing to edit, the source is returned"
        logging.warning("BestTimestepEdit: " + message)
        if image is None:
            source_image, _ = host.edit_seed(model, vae, latent_image, source, source, negative, seed, steps, cfg,
                                             sampler_name, scheduler, steps)
        else:
            source_image = image[:, :, :, :3].float().cpu()
        plot = plots.edit_candidates_plot([steps], None, None, steps, steps, "none")
        return io.NodeOutput(source_image, source_image, steps, torch.from_numpy(plot)[None], "WARNING: " + message)


NODES = [BestTimestepEdit]
