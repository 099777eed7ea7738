"""CISSweep: the Concept Insertion Success curve of any model, with statistics, pictures and files.

Seeds are run block by block (one batched sampler run per block, every (seed, k) branch inside it);
after each block its scores are written to output/pci/<run name>/, so an interrupted run loses
nothing written and a re-queue with the same settings resumes where it stopped."""

from comfy_api.latest import io

from ..pci_core import cis, judges, plots, results, runner, sweep_plan
from ..pci_core.images import save_animated_webp
from .comfy_glue import internals
from .comfy_glue import conditioning, runs
from .comfy_glue import branching
from .comfy_glue import sampler_inputs as inputs
from .comfy_glue.progress import SweepProgress
from .comfy_glue.sampling import Sampling
from .judge_nodes import Judge

CISResultType = io.Custom("CIS_RESULT")
NEVER_CROSSES = -1.0  # tau50 output when CIS never falls through 0.5 (a step is never negative)
GRID_ROWS = 4         # seeds shown in the timeline grid (its columns: plots.Timeline)


class CISSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CISSweep",
            display_name="CIS Sweep",
            category="PCI",
            is_output_node=True,
            description="When does a concept lock in? For every seed and every insertion step k, denoise with the "
                        "base prompt for k steps and with the concept prompt after, and ask the judge whether the "
                        "concept shows. CIS(k) is the share of seeds where it does; tau50 is where CIS falls through "
                        "0.5. k = 0 (concept only) and k = steps (base only) are always measured as controls. Results "
                        "go to output/pci/<run name>/ after every block of seeds; queue again to resume.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to measure"),
                io.Conditioning.Input("base", tooltip="Positive conditioning before the insertion step (e.g. 'a photo of a person')"),
                io.Conditioning.Input("concept", tooltip="Positive conditioning from the insertion step on (e.g. 'a photo of an old person')"),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, used at every step"),
                io.Latent.Input("latent", tooltip="Image size (an EmptyLatentImage of batch 1): each seed makes one image per k"),
                io.Vae.Input("vae", tooltip="Decodes the final latents for the judge"),
                Judge.Input("judge", tooltip="From PCI Judge Loader: decides whether each image shows the concept"),
                io.String.Input("judge_text", default="", tooltip="What the judge looks for, e.g. 'an old person'"),
                *inputs.seed_set(),
                io.String.Input("insert_steps", default="all", tooltip="Insertion steps k to measure: 'all', 'every N' "
                                "(a stride) or a list like '2,4,8-12'; 0 and steps are always added as controls"),
                inputs.steps(sweep_plan.MIN_SWEEP_STEPS),
                inputs.cfg(),
                inputs.sampler_name(),
                inputs.scheduler(),
                inputs.threshold(),
                inputs.max_batch(),
                io.Boolean.Input("valid_seeds_only", default=False, tooltip="Statistics over seeds whose k=0 image shows "
                                 "the concept and whose k=steps image does not (as the official runner); files keep all"),
                io.String.Input("run_name", default="cis", tooltip="Folder output/pci/<run name>/ for results.json and "
                                "cis.csv; the same name and settings resume, other settings there are an error"),
                io.String.Input("contrast", optional=True, default="", tooltip="clip judge: what the concept is told "
                                "apart from, e.g. the base prompt (empty: 'a photo'); ignored by rule and vqa"),
            ],
            outputs=[
                io.Image.Output("cis_curve", display_name="CIS curve", tooltip="CIS(k) with Wilson 95% band, tau50/tau70 "
                                "with bootstrap intervals, controls; top axis: the noise axis tau"),
                io.Image.Output("timeline", display_name="timeline grid", tooltip="Final images: rows = the first seeds, "
                                "columns = insertion steps, each with its judge score (green yes, red no)"),
                CISResultType.Output("cis_result", display_name="CIS result", tooltip="Every score of the run (for "
                                     "other PCI nodes, e.g. BestTimestepEdit)"),
                io.String.Output("table", display_name="table", tooltip="CIS per k, tau50/tau70 with intervals, "
                                 "controls and warnings as text"),
                io.Float.Output("tau50", display_name="tau50", tooltip="The step where CIS falls through 0.5 "
                                "(interpolated); -1 when it never does"),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, run_name="cis", **kwargs):
        # Re-run whenever the run's files changed (deleted, extended by another shard): ComfyUI would
        # otherwise hand back its cached outputs for the same inputs.
        return runs.files_fingerprint(run_name, results.RESULTS_FILE)

    @classmethod
    def execute(cls, model, base, concept, negative, latent, vae, judge, judge_text, seed, seed_count, seed_list,
                insert_steps, steps, cfg, sampler_name, scheduler, threshold, max_batch, valid_seeds_only, run_name,
                contrast="") -> io.NodeOutput:
        internals.require("CISSweep")
        seeds = sweep_plan.seeds_of(seed, seed_count, seed_list)
        ks = sweep_plan.parse_steps(insert_steps, steps)
        text, contrast = check_inputs(judge, judge_text, threshold, latent, contrast)
        sampling = Sampling(model, negative, steps, cfg, sampler_name, scheduler, max_batch).for_latent(latent)
        warnings = conditioning.warnings("CISSweep", base, concept)
        store = results.RunStore(runs.run_folder(run_name), cis.run_header(
            text, ks, steps, sampling.step_sigmas(), threshold,
            runs.sweep_settings(sampling, base, concept, latent, runs.judge_label(judge, contrast, latent))))
        block_size = sweep_plan.seeds_per_block(len(ks), sampling.max_batch)
        progress = SweepProgress(model, runner.pending_blocks(store, seeds, block_size), len(ks), len(sampling.sigmas()) - 1,
                                 sampling.max_batch)
        folder = runs.run_folder(run_name)
        grid = plots.Timeline(seeds[:GRID_ROWS], ks, save_clip=lambda seed, k, clip: save_animated_webp(
            clip, folder / "clips" / f"seed{seed}_k{k}.webp"))  # a video model's clips, for a video player
        measure = branching.measure(sampling, base, concept, latent, vae, judge, text, contrast, progress.sampling,
                                     progress.judging, grid.keep)
        result = runner.full_run(store, seeds, measure, block_size, on_block=progress.next_block)
        if grid.missing():  # resumed seeds: their pictures are not on disk, make them again for the grid
            measure(grid.missing(), grid.ks)
        summary = cis.summarize(result, valid_seeds_only=valid_seeds_only)
        summary["warnings"] = warnings + summary["warnings"]
        title = f"CIS of {text!r} ({sampler_name}, {scheduler}, {steps} steps, cfg {cfg})"
        timeline = grid.draw(result, threshold)
        curve = plots.cis_plot([summary], [text], title=title)
        return io.NodeOutput(runs.image_batch(curve), runs.image_batch(timeline), result, cis.table(summary),
                             tau50_of(summary))


def check_inputs(judge, judge_text, threshold, latent, contrast):
    """The inputs ComfyUI's own widgets do not check; ValueError naming the input."""
    if not isinstance(judge, judges.Judge):
        raise ValueError(f"judge: expected a judge from PCI Judge Loader (PCI_JUDGE), got {type(judge).__name__}")
    text = judges.check_text(judge_text, "judge_text")
    sweep_plan.check_threshold(threshold)
    batch = latent["samples"].shape[0]
    if batch != 1:
        raise ValueError(f"latent: a batch of {batch}; CISSweep makes one image per seed and k: use a latent of batch 1 "
                         "(EmptyLatentImage batch_size 1) and set seed_count or seed_list")
    return text, (contrast.strip() or None) if isinstance(contrast, str) else None


def tau50_of(summary: dict) -> float:
    step = summary["crossings"]["tau50"]["step"]
    return NEVER_CROSSES if step is None else float(step)


NODES = [CISSweep]
