"""PCI Concept List and CIS Study: many concepts against one base in one node, each with its own
result folder (output/pci/<run name>/<concept>/), one table and one overlaid CIS plot."""
import comfy.model_management
import comfy.utils
from comfy_api.latest import io

from ..pci_core import cis, plots, runner, study, sweep_plan, taxonomy
from .comfy_glue import internals
from .comfy_glue import conditioning, runs, workflow_paths
from .comfy_glue import branching
from .comfy_glue import sampler_inputs as inputs
from .comfy_glue.sampling import Sampling
from .judge_nodes import Judge

ConceptListType = io.Custom("PCI_CONCEPT_LIST")


class PCIConceptList(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PCIConceptList",
            display_name="PCI Concept List",
            category="PCI",
            description="Concepts for a CIS Study: a prompt template with a {} slot, the base value and the concept "
                        "values (one per line, or a list of a taxonomy file) -> the base and concept conditionings "
                        "and what the judge looks for. A value equal to the base value is skipped.",
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder the sampled model uses"),
                io.String.Input("template", default="a photo of a {} person at a playground",
                                tooltip="The prompt with a {} slot where each value goes"),
                io.String.Input("base_value", default="", tooltip="The value of the base prompt (empty: the "
                                "template without the slot, e.g. 'a photo of a person at a playground')"),
                io.String.Input("values", multiline=True, default="young\nold",
                                tooltip="Concept values, one per line (ignored when a taxonomy file is given)"),
                io.String.Input("taxonomy_file", optional=True, default="", tooltip="A taxonomy JSON "
                                '({"category": {"attribute": [values]}}) to take the values from'),
                io.String.Input("taxonomy_path", optional=True, default="", tooltip="Dotted path of one list "
                                "in the taxonomy file, e.g. demographics.gender"),
                io.String.Input("judge_template", optional=True, default="", tooltip="What the judge looks for, "
                                "with a {} slot, e.g. 'an {} person' (empty: the prompt template)"),
            ],
            outputs=[ConceptListType.Output(display_name="concepts", tooltip="Base and concept conditionings "
                                            "with their judge texts, for CIS Study")],
        )

    @classmethod
    def execute(cls, clip, template, base_value, values, taxonomy_file="", taxonomy_path="",
                judge_template="") -> io.NodeOutput:
        internals.require("PCIConceptList")
        if taxonomy_file.strip():
            path = workflow_paths.taxonomy_file(taxonomy_file)
            values = taxonomy.one_taxonomy_list(taxonomy.load_taxonomy(path), taxonomy_path.strip())
        concepts = study.concept_list(template, base_value, values, judge_template.strip() or None)
        return io.NodeOutput({"list": concepts, "base": conditioning.encode(clip, concepts.base_prompt),
                              "concepts": [conditioning.encode(clip, c.prompt) for c in concepts.concepts]})


class CISStudy(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CISStudy",
            display_name="CIS Study",
            category="PCI",
            description="CIS(k) and tau50 of every concept of a concept list: a full sweep of every insertion step, "
                        "or the adaptive lock-in search (coarse steps, then refinement around the 0.5 crossing). "
                        "Each concept keeps its own run folder, so a study resumes concept by concept.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to study"),
                ConceptListType.Input("concepts", tooltip="From PCI Concept List"),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, used at every step"),
                io.Latent.Input("latent", tooltip="An empty latent of batch 1 (the image size)"),
                *inputs.seed_set(),
                inputs.steps(sweep_plan.MIN_SWEEP_STEPS),
                inputs.cfg(),
                inputs.sampler_name(),
                inputs.scheduler(),
                io.Vae.Input("vae", tooltip="Decodes the final latents for the judge"),
                Judge.Input("judge", tooltip="From PCI Judge Loader"),
                inputs.threshold(),
                inputs.max_batch(),
                io.String.Input("run_name", default="study", tooltip="Results go to output/pci/<run name>/<concept>/; "
                                "the same name and settings resume, other settings are refused"),
                io.Boolean.Input("adaptive", default=False, tooltip="Adaptive lock-in search: about a third of "
                                 "the evaluations of a full sweep for tau50; fewer steps are measured"),
            ],
            outputs=[io.Image.Output(display_name="cis_plot", tooltip="CIS(k) of every concept, overlaid"),
                     io.String.Output(display_name="table", tooltip="tau50, tau70 and controls per concept")],
        )

    @classmethod
    def fingerprint_inputs(cls, run_name="study", **kwargs):
        # Re-run when the study's files changed (deleted, extended by another machine's shard).
        return runs.files_fingerprint(run_name, study.INDEX_FILE)

    @classmethod
    def execute(cls, model, concepts, negative, latent, seed, seed_count, seed_list, steps, cfg, sampler_name, scheduler,
                vae, judge, threshold, max_batch, run_name, adaptive) -> io.NodeOutput:
        internals.require("CISStudy")
        seeds = sweep_plan.seeds_of(seed, seed_count, seed_list)
        sweep_plan.check_threshold(threshold)
        root = runs.run_folder(run_name)
        sampling = Sampling(model, negative, steps, cfg, sampler_name, scheduler, max_batch).for_latent(latent)
        listed, bar = concepts["list"], comfy.utils.ProgressBar(len(concepts["concepts"]))
        entries, summaries = [], []
        for concept, cond in zip(listed.concepts, concepts["concepts"]):
            comfy.model_management.throw_exception_if_processing_interrupted()
            folder = root / study.folder_name(concept.value)
            header = cis.run_header(concept.judge_text, range(steps + 1), steps, sampling.step_sigmas(), threshold,
                                    settings_of(sampling, listed, concepts["base"], concept, cond, latent, judge))
            measure = branching.measure(sampling, concepts["base"], cond, latent, vae, judge, concept.judge_text,
                                         concept.contrast or None)
            result = runner.concept_run(folder, header, seeds, measure, adaptive,
                                        sweep_plan.seeds_per_block(steps + 1, sampling.max_batch))
            entries.append((folder.name, concept.value))
            summaries.append(cis.summarize(result))
            summaries[-1]["warnings"][:0] = conditioning.warnings("CISStudy", concepts["base"], cond)
            bar.update(1)
        study.write_index(root, entries)
        labels = [label for _, label in entries]
        title = f"CIS(k) of {len(labels)} concepts against {listed.base_prompt!r}"
        return io.NodeOutput(runs.image_batch(plots.cis_plot(summaries, labels, title)),
                             study.study_table(summaries, labels))


def settings_of(sampling: Sampling, concepts: study.ConceptList, base, concept: study.Concept, cond, latent, judge) -> dict:
    """CISSweep's settings (conditionings by content) plus the texts (runner.concept_run adds the search)."""
    settings = runs.sweep_settings(sampling, base, cond, latent, runs.judge_label(judge, concept.contrast, latent))
    return {**settings, "base_text": concepts.base_prompt, "concept_text": concept.prompt}
