"""ConceptInsertionSampler: KSampler that switches the positive prompt from base to concept at an
exact step (keyed on sigma, so it lands on that step for every sampler and scheduler)."""
from comfy_api.latest import io

from .comfy_glue import internals
from .comfy_glue import conditioning, guider
from .comfy_glue import sampler_inputs as inputs
from .comfy_glue.sampling import Sampling


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
                io.Model.Input("model", tooltip="The model used for denoising (e.g. PCI Demo Model's MODEL)"),
                io.Conditioning.Input("base", tooltip="Positive conditioning before the insertion step"),
                io.Conditioning.Input("concept", tooltip="Positive conditioning from the insertion step on"),
                io.Conditioning.Input("negative", tooltip="Negative conditioning for every step"),
                io.Latent.Input("latent_image", tooltip="The latent to denoise; as KSampler, a batch draws all "
                                "its noise from the one seed"),
                inputs.noise_seed(),
                inputs.steps(),
                inputs.cfg(),
                inputs.sampler_name(),
                inputs.scheduler(),
                io.Float.Input("insert_step", default=10.0, min=0.0, max=10000.0, step=1.0,
                               tooltip="Step k where the concept takes over: a whole number of steps "
                                       "(0..steps), or a fraction of the steps in (0, 1)"),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="As KSampler: < 1 runs the last steps of a longer schedule (steps and "
                                       "insert_step count the steps run); 0 returns the latent unchanged"),
            ],
            outputs=[io.Latent.Output(tooltip="The denoised latent")],
        )

    @classmethod
    def execute(cls, model, base, concept, negative, latent_image, seed, steps, cfg, sampler_name,
                scheduler, insert_step, denoise) -> io.NodeOutput:
        internals.require("ConceptInsertionSampler")
        sampling = Sampling(model, negative, steps, cfg, sampler_name, scheduler)
        conditioning.warnings("ConceptInsertionSampler", base, concept)  # logged: the node has no text output
        return io.NodeOutput(guider.concept_insertion_sample(sampling, seed, base, concept, latent_image, insert_step, denoise))
