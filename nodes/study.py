"""PCI Concept List and CIS Study: many concepts against one base in one node, each with its own
result folder (output/pci/<run name>/<concept>/), one table and one overlaid CIS plot."""
import comfy.model_management
import comfy.samplers
import comfy.utils
import numpy as np
from comfy_api.latest import io

from ..pci_core import cis, plots, study, sweep
from ..pci_core.results import RESULTS_FILE, RunStore, read_results
from . import host
from .judge import Judge

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
        return io.NodeOutput({"list": concepts, "base": host.encode_text(clip, concepts.base_prompt),
                              "concepts": [host.encode_text(clip, c.prompt) for c in concepts.concepts]})


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
        # Re-run when the study's files changed (deleted, extended by another machine's shard): ComfyUI
        # would otherwise hand back its cached outputs for the same inputs.
        try:
            index = host.study_folder(run_name) / study.INDEX_FILE
        except ValueError:
            return None
        return index.stat().st_mtime_ns if index.exists() else None

    @classmethod
    def execute(cls, model, concepts, negative, latent, seeds, steps, cfg, sampler_name, scheduler, vae, judge,
                threshold, max_batch, run_name, adaptive) -> io.NodeOutput:
        seeds = sweep.parse_seeds(seeds, "seeds")
        root = host.study_folder(run_name)
        run = dict(model=model, base=concepts["base"], negative=negative, latent=latent, steps=steps, cfg=cfg,
                   sampler_name=sampler_name, scheduler=scheduler, vae=vae, judge=judge,
                   max_batch=max_batch or host.max_batch_for_device(model, latent["samples"].shape[1:]))
        sigmas = host.step_sigmas(host.sampler_sigmas(model, steps, sampler_name, scheduler, 1.0), steps)
        progress = comfy.utils.ProgressBar(len(concepts["list"].concepts))
        entries, summaries = [], []
        for concept, cond in zip(concepts["list"].concepts, concepts["concepts"]):
            comfy.model_management.throw_exception_if_processing_interrupted()
            header = {"concept": concept.judge_text, "ks": list(range(steps + 1)), "steps": steps, "sigmas": sigmas,
                      "threshold": threshold, "settings": settings_of(concepts["list"], concept, cond, run, adaptive)}
            folder = root / study.folder_name(concept.value)
            result = (study_adaptive if adaptive else study_full)(folder, header, seeds, concept, cond, run)
            entries.append((folder.name, concept.value))
            summaries.append(cis.summarize(result))
            progress.update(1)
        study.write_index(root, entries)
        labels = [label for _, label in entries]
        title = f"CIS(k) of {len(labels)} concepts against {concepts['list'].base_prompt!r}"
        return io.NodeOutput(host.image_batch(plots.cis_plot(summaries, labels, title)),
                             study.study_table(summaries, labels))


def settings_of(concepts: study.ConceptList, concept: study.Concept, cond, run: dict, adaptive: bool) -> dict:
    """CISSweep's settings (conditionings by content) plus the texts and the search mode."""
    settings = host.sweep_settings(run["model"], run["base"], cond, run["negative"], run["latent"], run["sampler_name"],
                                   run["scheduler"], run["cfg"], f"{run['judge'].describe()}; contrast {concept.contrast!r}")
    return {**settings, "base_text": concepts.base_prompt, "concept_text": concept.prompt,
            "search": "adaptive" if adaptive else "full"}


def measure_scores(seeds, ks, concept, cond, run) -> np.ndarray:
    """Scores (S, K) of every (seed, k): one branching sampler run, then decode and judge."""
    latents, _ = host.sweep_latents(run["model"], run["base"], cond, run["negative"], run["latent"], seeds, ks,
                                    run["steps"], run["cfg"], run["sampler_name"], run["scheduler"], run["max_batch"])
    _, scores = host.decode_and_judge(run["vae"], run["judge"], latents.reshape(-1, *latents.shape[2:]),
                                      concept.judge_text, concept.contrast or None, run["max_batch"])
    return scores.reshape(len(seeds), len(ks))


def study_full(folder, header, seeds, concept, cond, run) -> cis.CISResult:
    """Every k; seeds in blocks, each block written when done (an interrupted study resumes there)."""
    store = RunStore(folder, header)
    done = set(store.done_seeds())
    for block in sweep.seed_blocks([s for s in seeds if s not in done], len(header["ks"]), run["max_batch"]):
        comfy.model_management.throw_exception_if_processing_interrupted()
        store.add(block, measure_scores(block, header["ks"], concept, cond, run))
    result = store.result()
    return result.select_seeds(np.isin(result.seeds, seeds))


def study_adaptive(folder, header, seeds, concept, cond, run) -> cis.CISResult:
    """The adaptive search over all seeds (its rounds need every seed's decisions); a folder holding this
    concept's adaptive run over the same seeds is read back."""
    if (folder / RESULTS_FILE).exists():
        stored, stored_seeds, _ = read_results(folder / RESULTS_FILE)
        store = RunStore(folder, {**header, "ks": stored["ks"]})  # refuses other settings
        if sorted(stored_seeds) != sorted(seeds):
            raise ValueError(f"{folder / RESULTS_FILE} holds an adaptive run over seeds {stored_seeds}; it resumes "
                             "only with the same seeds (or choose another run_name)")
        return store.result()
    scores_by_k = {}

    def measure(ks):
        comfy.model_management.throw_exception_if_processing_interrupted()
        scores = measure_scores(seeds, ks, concept, cond, run)
        scores_by_k.update({k: scores[:, i] for i, k in enumerate(ks)})
        return scores >= header["threshold"]

    search = study.adaptive_search(measure, header["steps"])
    store = RunStore(folder, {**header, "ks": search.ks})
    store.add(seeds, np.stack([scores_by_k[k] for k in search.ks], axis=1))
    return store.result()
