"""ConceptInsertionSampler: KSampler that switches the positive prompt from base to concept at an
exact step (keyed on sigma, so it lands on that step for every sampler and scheduler)."""
import comfy.samplers
from comfy_api.latest import io

from . import host


class ConceptInsertionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptInsertionSampler",
            display_name="Concept Insertion Sampler",
            category="PCI",
            description="Denoise with the base prompt for steps 0..k-1, then with the concept prompt. "
                        "k = 0 is a pure concept run, k = steps a pure base run.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("base", tooltip="Positive conditioning before the insertion step"),
                io.Conditioning.Input("concept", tooltip="Positive conditioning from the insertion step on"),
                io.Conditioning.Input("negative"),
                io.Latent.Input("latent_image"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                io.Int.Input("steps", default=20, min=1, max=10000),
                io.Float.Input("cfg", default=4.0, min=0.0, max=100.0, step=0.1, round=0.01),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS),
                io.Float.Input("insert_step", default=10.0, min=0.0, max=10000.0, step=1.0,
                               tooltip="Step k where the concept takes over: a whole number of steps "
                                       "(0..steps), or a fraction of the steps in (0, 1)"),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01),
            ],
            outputs=[io.Latent.Output()],
        )

    @classmethod
    def execute(cls, model, base, concept, negative, latent_image, seed, steps, cfg, sampler_name,
                scheduler, insert_step, denoise) -> io.NodeOutput:
        return io.NodeOutput(host.concept_insertion_sample(
            model, seed, steps, cfg, sampler_name, scheduler, base, concept, negative, latent_image,
            insert_step, denoise))
