"""BestTimestepEdit: pick the step k at which the edit prompt takes over (from a CIS result, a quick
probe over helper seeds, or the edit itself made at every k), make the edit of a seed or of an input
image, and say why that k."""
import logging

import comfy.model_management
import comfy.utils
import torch
from comfy_api.latest import io

from ..pci_core import edit_rules, plots
from .comfy_glue import internals
from .comfy_glue import edit_plan, edit_sampling
from .comfy_glue import conditioning
from .comfy_glue import sampler_inputs as inputs
from .comfy_glue.edit_sampling import check_image_for_vae
from .comfy_glue.sampling import Sampling, check_conditionings
from .judge_nodes import Judge
from .cis_sweep import CISResultType


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
                inputs.noise_seed(),
                inputs.steps(),
                inputs.cfg(),
                inputs.sampler_name(),
                inputs.scheduler(),
                io.Vae.Input("vae", tooltip="VAE to decode the results (and encode an input image)"),
                io.Combo.Input("rule", options=list(edit_rules.RULES), default="tau",
                               tooltip="tau: k = the last whole step where CIS is still >= level; best score: k "
                                       "maximising weight*edit success + (1-weight)*preservation over the probe; "
                                       "fixed: k = fixed_k; latest yes: the edit made at every k for this seed "
                                       "(or input image), k = the latest step whose result the judge says shows "
                                       "judge_text (keeps the most of the source; 0 if it never takes). Costs T + "
                                       "sum(T-k) model rows (one seed's sweep) before the edit; needs a judge"),
                io.Float.Input("level", default=edit_rules.DEFAULT_LEVEL, min=0.0, max=1.0, step=0.05,
                               tooltip="tau rule: CIS level. 0.5 = the latest step in the paper's window CIS "
                                       "0.5-0.7 (or just before it when the window holds no whole step); higher "
                                       "levels make the edit surer and keep less"),
                io.Float.Input("weight", default=edit_rules.DEFAULT_WEIGHT, min=0.0, max=1.0, step=0.05,
                               tooltip="best score rule: weight of edit success against preservation (SSIM to "
                                       "the source)"),
                io.Int.Input("fixed_k", default=10, min=0, max=10000, tooltip="fixed rule: the insertion step "
                             "(0 = regenerate with the edit prompt, steps = keep the source)"),
                io.Int.Input("probe_seeds", default=4, min=1, max=256, tooltip="Helper seeds the probe runs, seed+1 "
                             ".. seed+probe_seeds (every k for each, in one batched sampler run); used when a judge "
                             "is connected"),
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
        internals.require("BestTimestepEdit")
        sampling = Sampling(model, negative, steps, cfg, sampler_name, scheduler)
        check_conditionings(source=source, edit=edit, negative=negative)
        if image is not None:
            check_image_for_vae(image, vae)
        if conditioning.same_conditioning(source, edit):
            return cls._unchanged(sampling, vae, latent_image, source, seed, image)
        notes = conditioning.warnings("BestTimestepEdit", source, edit, ("source", "edit"))
        if rule == "fixed":
            edit_rules.check_step(fixed_k, steps, "fixed_k")
        if cis_result is not None:
            edit_rules.check_matching_run(cis_result, steps, sampler_name, scheduler, sampling.step_sigmas())
        kind = edit_plan.measurement(rule, judge is not None, cis_result is not None)
        bar = comfy.utils.ProgressBar(3)
        found = edit_sampling.candidates(kind, sampling, vae, judge, latent_image, image, source, edit, seed, probe_seeds,
                                        judge_text, contrast or None, inversion_cfg, cis_result)
        bar.update_absolute(1)
        choice = edit_rules.choose_step(rule, steps, result=found.result, level=level, ks=found.ks,
                                     edit_success=found.success, preservation=found.preservation, weight=weight,
                                     fixed_k=fixed_k, decisions=found.decisions,
                                     what=f"seed {seed}" if image is None else "the input image")
        comfy.model_management.throw_exception_if_processing_interrupted()
        if image is None:
            edited, source_image = edit_sampling.edit_seed(sampling, vae, latent_image, source, edit, seed, choice.k)
        else:
            edited = edit_sampling.edit_image(sampling, vae, image, source, edit, seed, choice.k, inversion_cfg)
            source_image = image[:, :, :, :3].float().cpu()
        bar.update_absolute(3)
        measured, success_label = edit_plan.measured_by(kind, seed, image is not None, judge_text, probe_seeds,
                                                      cis_result is not None)
        plot = plots.edit_candidates_plot(found.ks or [choice.k], found.success, found.preservation, choice.k, steps,
                                          choice.rule, success_label=success_label,
                                          preservation_label="preservation (SSIM to source)")
        how = edit_plan.edit_description(choice.k, steps, seed, image is not None, inversion_cfg)
        return io.NodeOutput(edited, source_image, choice.k, torch.from_numpy(plot)[None],
                             "".join(f"WARNING: {n}\n" for n in notes) + edit_plan.explanation(choice, measured, how))

    @classmethod
    def _unchanged(cls, sampling, vae, latent_image, source, seed, image):
        message = "source and edit conditioning are the same: there is nothing to edit, the source is returned"
        logging.warning("BestTimestepEdit: " + message)
        if image is None:
            source_image, _ = edit_sampling.edit_seed(sampling, vae, latent_image, source, source, seed, sampling.steps)
        else:
            source_image = image[:, :, :, :3].float().cpu()
        plot = plots.edit_candidates_plot([sampling.steps], None, None, sampling.steps, sampling.steps, "none")
        return io.NodeOutput(source_image, source_image, sampling.steps, torch.from_numpy(plot)[None], "WARNING: " + message)


NODES = [BestTimestepEdit]
