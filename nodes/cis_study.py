"""PCI Concept List and CIS Study: many concepts against one base in one node, each with its own
result folder (output/pci/<run name>/<concept>/), one table and one overlaid CIS plot."""
import comfy.model_management
import comfy.samplers
import comfy.utils
from comfy_api.latest import io

from ..pci_core import cis, plots, runner, study, sweep_plan
from ..pci_core.results import RunStore
from .comfy_glue import conditioning, runs
from .comfy_glue import branching
from .comfy_glue.sampling import Sampling, encode_text
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
        if taxonomy_file.strip():
            lists = study.taxonomy_lists(study.load_taxonomy(taxonomy_file.strip()), taxonomy_path.strip())
            if len(lists) != 1:
                raise ValueError(f"taxonomy_path {taxonomy_path!r} holds {len(lists)} lists ({', '.join(lists)}); "
                                 "give the dotted path of one of them")
            values = next(iter(lists.values()))
        concepts = study.concept_list(template, base_value, values, judge_template.strip() or None)
        return io.NodeOutput({"list": concepts, "base": encode_text(clip, concepts.base_prompt),
                              "concepts": [encode_text(clip, c.prompt) for c in concepts.concepts]})


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
                io.String.Input("seeds", default="0-15", tooltip="Seeds, e.g. '0-15' or '1,5,9-20'"),
                io.Int.Input("steps", default=20, min=2, max=10000, tooltip="Sampler steps T (at least 2)"),
                io.Float.Input("cfg", default=4.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale"),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="As in KSampler"),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="As in KSampler"),
                io.Vae.Input("vae", tooltip="Decodes the final latents for the judge"),
                Judge.Input("judge", tooltip="From PCI Judge Loader"),
                io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="A score >= threshold counts as yes"),
                io.Int.Input("max_batch", default=0, min=0, max=4096, tooltip="Most rows per model call, decode and "
                             "judge batch; 0 = auto (fits half the device's free memory, at most 64)"),
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
    def execute(cls, model, concepts, negative, latent, seeds, steps, cfg, sampler_name, scheduler, vae, judge,
                threshold, max_batch, run_name, adaptive) -> io.NodeOutput:
        seeds = sweep_plan.parse_seeds(seeds, "seeds")
        root = runs.run_folder(run_name)
        run = Sampling(model, negative, steps, cfg, sampler_name, scheduler, max_batch).for_latent(latent)
        listed, bar = concepts["list"], comfy.utils.ProgressBar(len(concepts["concepts"]))
        entries, summaries = [], []
        for concept, cond in zip(listed.concepts, concepts["concepts"]):
            comfy.model_management.throw_exception_if_processing_interrupted()
            folder = root / study.folder_name(concept.value)
            header = {"concept": concept.judge_text, "ks": list(range(steps + 1)), "steps": steps,
                      "sigmas": run.step_sigmas(), "threshold": threshold,
                      "settings": settings_of(run, listed, concepts["base"], concept, cond, latent, judge, adaptive)}
            measure = branching.measure(run, concepts["base"], cond, latent, vae, judge, concept.judge_text,
                                         concept.contrast or None)
            if adaptive:
                result, _ = runner.adaptive_run(folder, header, seeds, measure)
            else:
                result = runner.full_run(RunStore(folder, header), seeds, measure,
                                         sweep_plan.seeds_per_block(steps + 1, run.max_batch))
            entries.append((folder.name, concept.value))
            summaries.append(cis.summarize(result))
            summaries[-1]["warnings"][:0] = conditioning.warnings("CISStudy", concepts["base"], cond)
            bar.update(1)
        study.write_index(root, entries)
        labels = [label for _, label in entries]
        title = f"CIS(k) of {len(labels)} concepts against {listed.base_prompt!r}"
        return io.NodeOutput(runs.image_batch(plots.cis_plot(summaries, labels, title)),
                             study.study_table(summaries, labels))


def settings_of(run: Sampling, concepts: study.ConceptList, base, concept: study.Concept, cond, latent, judge,
                adaptive: bool) -> dict:
    """CISSweep's settings (conditionings by content) plus the texts and the search mode."""
    settings = runs.sweep_settings(run, base, cond, latent, f"{judge.describe()}; contrast {concept.contrast!r}")
    return {**settings, "base_text": concepts.base_prompt, "concept_text": concept.prompt,
            "search": "adaptive" if adaptive else "full"}
