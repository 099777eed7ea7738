"""Write the shipped example workflows (workflows/*.json, UI format) and their .jpg thumbnails.

Run under ComfyUI's Python (the node definitions come from the real host, so widget order and
defaults are the nodes' own):
    COMFYUI_PATH=/root/comfyui-host/ComfyUI /root/comfyui-host/venv/bin/python tools/make_workflows.py [--thumbnails]
--thumbnails runs each demo workflow in the host and saves its output image as workflows/<name>.jpg
(the template browser shows only .jpg). The SD1.5 variants need a real checkpoint to show anything,
so their thumbnail is a screenshot of the graph from the browser tier
(--graph-shots /tmp/pci_browser_artifacts/graphs).
Not part of the published pack (.comfyignore)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO))  # pci_core, for the example input picture
from workflow_graph import Graph  # noqa: E402
from pci_core.demo.world import DEMO_BASE  # noqa: E402

WORKFLOWS = REPO / "workflows"
DEMO_WEIGHTS = "demo_model.safetensors"
SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SD15_JUDGE_ARCH, SD15_JUDGE_WEIGHTS = "ViT-B-32", "open_clip_vit_b32.safetensors"
DEMO_CONCEPT = "a large blue circle on the left on a black background"
SD15_BASE, SD15_CONCEPT = "a photo of a person", "a photo of an old person"
SD15_NEGATIVE = "blurry, lowres"
DEMO_LORA, SD15_LORA = "pci_demo_green.safetensors", "your_style_lora.safetensors"
EXAMPLE_INPUT = "pci_example_input.png"  # a demo-world picture shipped in workflows/ (the pack copies it to input/)

DEMO_NOTE = ("Runs on the PCI demo model (shipped, 64x64 pictures of shapes), in seconds on a CPU.\n"
             "Your own checkpoint: replace 'PCI Demo Model' with Load Checkpoint (MODEL, CLIP, VAE to the "
             "same inputs), set the latent size (512x512 for SD1.5, 1024 for SDXL), steps 20-30, cfg ~7, "
             "and write real prompts: base = what the picture is, concept = the base plus the concept.")
JUDGE_NOTE = ("Judge: 'rule' reads the demo world's pixels exactly; it knows only the demo words (shapes, "
              "colours, sizes, positions, backgrounds).\nYour own images: backend 'clip' with an open_clip "
              "weights file in models/pci_judges (model = its architecture, e.g. ViT-B-32), or 'vqa' with a "
              "Qwen2.5-VL folder there. Nothing is downloaded. Check the threshold on a few images first: "
              "the CIS curve moves with it.")
SD15_NOTE = ("SD1.5 variant: put an SD1.5 checkpoint in models/checkpoints (e.g. v1-5-pruned-emaonly."
             "safetensors) and an open_clip ViT-B-32 weights file in models/pci_judges, then pick them in "
             "the loaders. Any SD1.5 fine-tune works; for SDXL raise the latent to 1024x1024.")


# ------------------------------------------------------------------------------------------ pieces

def demo_model(g: Graph):
    return g.add("PCIDemoModelLoader", 0, weights=DEMO_WEIGHTS)


def sd15_model(g: Graph):
    return g.add("CheckpointLoaderSimple", 0, ckpt_name=SD15_CHECKPOINT)


def prompts(g: Graph, clip, base: str, concept: str, negative: str = "", like_base: bool = False):
    """base, concept and negative conditionings (column 1); like_base: the concept through PCI Concept
    Encode (the base's extras copied: FluxGuidance's guidance, SDXL sizes, ...)."""
    base_cond = g.add("CLIPTextEncode", 1, "base prompt", 360, clip=clip, text=base)[0]
    concept_cond = (g.add("PCIConceptEncode", 1, "concept prompt (encoded like the base)", 360, clip=clip,
                          base=base_cond, text=concept)[0] if like_base else
                    g.add("CLIPTextEncode", 1, "concept prompt", 360, clip=clip, text=concept)[0])
    return base_cond, concept_cond, g.add("CLIPTextEncode", 1, "negative prompt", 360, clip=clip, text=negative)[0]


def rule_judge(g: Graph, column: int):
    return g.add("PCIJudgeLoader", column, backend="rule")[0]


def clip_judge(g: Graph, column: int):
    return g.add("PCIJudgeLoader", column, backend="clip", model=SD15_JUDGE_ARCH, weights=SD15_JUDGE_WEIGHTS)[0]


def model_and_note(g: Graph, sd15: bool, extra: str = ""):
    """The model loader (MODEL, CLIP, VAE) and the note saying what to change for one's own checkpoint."""
    loader = sd15_model(g) if sd15 else demo_model(g)
    g.note((SD15_NOTE if sd15 else DEMO_NOTE) + extra, 0)
    return loader


def example_prompts(g: Graph, clip, sd15: bool, like_base: bool = False):
    """The workflows' base, concept and negative conditionings."""
    return prompts(g, clip, *((SD15_BASE, SD15_CONCEPT, SD15_NEGATIVE) if sd15 else (DEMO_BASE, DEMO_CONCEPT, "")),
                   like_base=like_base)


def image_latent(g: Graph, sd15: bool, batch: int = 1):
    size = 512 if sd15 else 64
    return g.add("EmptyLatentImage", 1, width=size, height=size, batch_size=batch)[0]


def judge_for(g: Graph, sd15: bool, column: int):
    return clip_judge(g, column) if sd15 else rule_judge(g, column)


# ------------------------------------------------------------------------------------------ workflows

def concept_insertion(g: Graph, sd15: bool = False):
    """ConceptInsertionSampler: base prompt for the first k steps, concept prompt after (the concept encoded
    like the base, as a FLUX or SDXL graph needs it)."""
    loader = model_and_note(g, sd15)
    base, concept, negative = example_prompts(g, loader[1], sd15, like_base=True)
    g.note("PCI Concept Encode makes the concept prompt carry whatever the base carries besides its text "
           "(FLUX: put FluxGuidance on the base, before it; SDXL: use CLIPTextEncodeSDXL for the base): PCI "
           "changes the words only, and the samplers warn when base and concept differ in more.", 1)
    latent = image_latent(g, sd15, batch=2)
    g.note("insert_step k: the first k steps use the base prompt, the rest the concept. k = 0 is the "
           "concept alone, k = steps the base alone. Same seeds, two insertion steps: early (k = 2) the "
           "concept takes over, late (k = 10) the picture is already decided and the concept is ignored.", 1)
    for k in (2, 10):
        sampled = g.add("ConceptInsertionSampler", 2, f"Concept Insertion Sampler (k = {k})", model=loader[0],
                        base=base, concept=concept, negative=negative, latent_image=latent, seed=0, steps=20,
                        cfg=7.0 if sd15 else 4.0, sampler_name="euler", scheduler="normal", insert_step=k)[0]
        images = g.add("VAEDecode", 3, samples=sampled, vae=loader[2])[0]
        g.add("SaveImage", 4, f"k = {k}", images=images, filename_prefix=f"pci/concept_insertion_k{k}")
    return [["k = 2"], ["k = 10"]]  # thumbnail: rows of image nodes, by title


def judge_images(g: Graph, sd15: bool = False):
    """CISJudge: score generated images for a concept."""
    loader = model_and_note(g, sd15)
    text = "a photo of an old person" if sd15 else "a large yellow triangle on the right on a gray background"
    positive = g.add("CLIPTextEncode", 1, "prompt", 360, clip=loader[1], text=text)[0]
    negative = g.add("CLIPTextEncode", 1, "negative prompt", 360, clip=loader[1], text="")[0]
    latent = image_latent(g, sd15, batch=8)
    sampled = g.add("KSampler", 2, model=loader[0], positive=positive, negative=negative, latent_image=latent,
                    seed=0, steps=20, cfg=7.0 if sd15 else 4.0)[0]
    images = g.add("VAEDecode", 2, samples=sampled, vae=loader[2])[0]
    judge = judge_for(g, sd15, 2)
    g.note(JUDGE_NOTE, 2)
    judged = g.add("CISJudge", 3, images=images, judge=judge, concept="old person" if sd15 else "yellow triangle",
                   threshold=0.5, contrast="person" if sd15 else "")
    g.add("PreviewAny", 4, source=judged["summary"])
    g.add("SaveImage", 4, "annotated images", images=judged["annotated images"], filename_prefix="pci/judged")
    return [["annotated images"]]


def cis_sweep(g: Graph, sd15: bool = False):
    """CISSweep: CIS(k) over seeds and insertion steps, tau50, the curve and the timeline grid."""
    loader = model_and_note(g, sd15)
    base, concept, negative = example_prompts(g, loader[1], sd15)
    latent = image_latent(g, sd15)
    judge = judge_for(g, sd15, 1)
    swept = g.add("CISSweep", 2, model=loader[0], base=base, concept=concept, negative=negative, latent=latent,
                  vae=loader[2], judge=judge, judge_text="an old person" if sd15 else "blue", seed=0,
                  seed_count=16 if sd15 else 8, insert_steps="all" if sd15 else "every 2", steps=20,
                  cfg=7.0 if sd15 else 4.0, sampler_name="euler", scheduler="normal", threshold=0.5,
                  run_name="sd15-old-person" if sd15 else "demo-red-to-blue",
                  contrast="a person" if sd15 else "")
    g.note("Reading the curve: CIS(k) is the share of seeds whose final image shows the concept when it is "
           "inserted at step k. k = 0 (concept only) should be near 1 and k = steps (base only) near 0: if not, "
           "fix the prompts or the judge first. tau50 is where the curve falls through 0.5 — the step where "
           "the concept locks in. Results are written to output/pci/<run_name>/ after every block of seeds; "
           "queue again with the same settings to resume, change run_name for a new run." +
           ("" if sd15 else " Demo: the colour locks in early (tau50 about 6 of 20)."), 2)
    g.add("SaveImage", 3, "CIS curve", images=swept["CIS curve"], filename_prefix="pci/cis_curve")
    g.add("PreviewImage", 3, "timeline grid", images=swept["timeline grid"])
    g.add("PreviewAny", 4, "table", source=swept["table"])
    g.add("PreviewAny", 4, "tau50", source=swept["tau50"])
    return [["CIS curve"]]


def cis_study(g: Graph, sd15: bool = False):
    """PCIConceptList + CISStudy: several concepts against one base, one overlaid plot and table."""
    loader = model_and_note(g, sd15)
    concepts = g.add("PCIConceptList", 1, clip=loader[1],
                     template="a photo of a {} person" if sd15 else "a large {} circle on the left on a black background",
                     base_value="young" if sd15 else "red",
                     values="old\nmiddle-aged\nteenage" if sd15 else "blue\ngreen\nyellow",
                     judge_template="a {} person" if sd15 else "{}")[0]
    negative = g.add("CLIPTextEncode", 1, "negative prompt", 360, clip=loader[1], text=SD15_NEGATIVE if sd15 else "")[0]
    latent = image_latent(g, sd15)
    judge = judge_for(g, sd15, 1)
    studied = g.add("CISStudy", 2, model=loader[0], concepts=concepts, negative=negative, latent=latent,
                    seed=0, seed_count=16 if sd15 else 8, seed_list="", steps=20 if sd15 else 12, cfg=7.0 if sd15 else 4.0,
                    sampler_name="euler", scheduler="normal", vae=loader[2], judge=judge, threshold=0.5,
                    run_name="sd15-age-study" if sd15 else "demo-colour-study", adaptive=False)
    g.note("One CIS run per concept value, each in output/pci/<run_name>/<value>/ (resumable), then one "
           "overlaid plot and a table of tau50 / tau70 / controls. 'adaptive' finds tau50 with about a third of "
           "the evaluations (coarse steps, then refining around the 0.5 crossing). Values can also come from a "
           "taxonomy JSON (taxonomy_file + taxonomy_path, e.g. demographics.gender).", 2)
    g.add("SaveImage", 3, "CIS of every concept", images=studied[0], filename_prefix="pci/cis_study")
    g.add("PreviewAny", 3, "table", source=studied[1])
    return [["CIS of every concept"]]


EDIT_NOTE = ("Best Timestep Edit: the source prompt holds for the first k steps, the edit prompt finishes. Too "
             "early regenerates the picture, too late misses the edit. rule 'tau' takes the last step where CIS "
             "is still >= level (from a CIS result, or a quick probe over helper seeds with the judge); 'best "
             "score' weighs edit success against preservation (SSIM to the source); 'fixed' uses fixed_k. The "
             "explanation output says which k and why.")


def best_timestep_edit(g: Graph, sd15: bool = False, image: bool = False):
    """BestTimestepEdit on its own: k from a quick probe over helper seeds (tau rule), on a seed's image
    or (image=True) on an input picture, inverted with the source prompt to step k."""
    loader = model_and_note(g, sd15, "" if not image else (
        "\n\nThe input image: upload yours in Load Image (" + ("512x512 for SD1.5" if sd15 else
        "the demo model reads 64x64 pictures of the demo world; the example, workflows/" + EXAMPLE_INPUT +
        ", is put into ComfyUI/input when the pack loads") + ")."))
    source, edit, negative = example_prompts(g, loader[1], sd15)
    latent = image_latent(g, sd15)
    judge = judge_for(g, sd15, 1)
    extra = {}
    if image:
        extra["image"] = g.add("LoadImage", 1, image=EXAMPLE_INPUT)[0]
    edited = g.add("BestTimestepEdit", 2, model=loader[0], source=source, edit=edit, negative=negative,
                   latent_image=latent, seed=0, steps=20, cfg=7.0 if sd15 else 4.0, sampler_name="euler",
                   scheduler="normal", vae=loader[2], rule="tau", level=0.9, probe_seeds=8,
                   judge_text="an old person" if sd15 else "blue", judge=judge, contrast="a person" if sd15 else "",
                   **extra)
    g.note(EDIT_NOTE, 2)
    g.add("SaveImage", 3, "source", images=edited["source"], filename_prefix="pci/edit_source")
    g.add("SaveImage", 3, "edited", images=edited["edited"], filename_prefix="pci/edited")
    g.add("PreviewImage", 4, "candidate steps", images=edited["plot"])
    g.add("PreviewAny", 4, "why this k", source=edited["explanation"])
    return [["source", "edited"]]


def find_lock_in_then_edit(g: Graph, sd15: bool = False):
    """End to end: CISSweep finds when the concept locks in; BestTimestepEdit, fed by its CIS result, edits at
    that step (tau rule)."""
    loader = model_and_note(g, sd15)
    base, concept, negative = example_prompts(g, loader[1], sd15)
    latent = image_latent(g, sd15)
    judge = judge_for(g, sd15, 1)
    common = dict(model=loader[0], negative=negative, vae=loader[2], steps=20, cfg=7.0 if sd15 else 4.0,
                  sampler_name="euler", scheduler="normal")
    swept = g.add("CISSweep", 2, base=base, concept=concept, latent=latent, judge=judge,
                  judge_text="an old person" if sd15 else "blue", seed=0, seed_count=16 if sd15 else 8,
                  insert_steps="all", threshold=0.5, run_name="sd15-lock-in" if sd15 else "demo-lock-in",
                  contrast="a person" if sd15 else "", **common)
    g.note(f"1. CIS Sweep: when does the concept lock in? (seeds 0-{15 if sd15 else 7}, the edited seed 0 among "
           "them: seeds lock in at different steps, so measure on the seeds you edit). 2. Best Timestep Edit, fed "
           "by the sweep's CIS "
           "result (same steps, sampler and scheduler), edits seed 0 at the last step where CIS is still >= "
           "level: as late as possible (keeps the most of the source) while the edit still takes on that share "
           "of seeds. level 0.9: a sure edit (it takes on 90% of seeds); the paper's editing window is CIS 0.7 to "
           "0.5, which keeps more of the source but the edit takes on only that share of seeds.", 2)
    edited = g.add("BestTimestepEdit", 3, source=base, edit=concept, latent_image=latent, seed=0, rule="tau",
                   level=0.9, cis_result=swept["CIS result"], **common)
    g.add("SaveImage", 4, "CIS curve", images=swept["CIS curve"], filename_prefix="pci/lock_in_curve")
    g.add("SaveImage", 4, "source", images=edited["source"], filename_prefix="pci/lock_in_source")
    g.add("SaveImage", 4, "edited", images=edited["edited"], filename_prefix="pci/lock_in_edited")
    g.add("PreviewAny", 5, "tau50", source=swept["tau50"])
    g.add("PreviewAny", 5, "why this k", source=edited["explanation"])
    return [["source", "edited"], ["CIS curve"]]


LORA_NOTE = ("A LoRA inserted at step k, measured like a prompt: CreateHookLoraModelOnly makes the LoRA a hook, "
             "Cond Set Props puts it on the concept conditioning (here the base prompt itself: the LoRA alone; "
             "encode another text to insert text and LoRA together). Concept Insertion Sampler and CIS Sweep switch "
             "from the base to the hooked concept at step k, so CIS(k) is the share of seeds whose picture still "
             "takes the LoRA's look when it enters at step k.")


def lora_insertion(g: Graph, sd15: bool = False):
    """CIS Sweep with a LoRA (a weight hook) as the concept: when does the LoRA's look lock in?"""
    loader = model_and_note(g, sd15, "" if not sd15 else (
        "\n\nYour LoRA: put it in models/loras and pick it in Create Hook LoRA (MO); set judge_text to what it "
        "makes you see (its style, its character)."))
    base = g.add("CLIPTextEncode", 1, "base prompt", 360, clip=loader[1], text=SD15_BASE if sd15 else DEMO_BASE)[0]
    negative = g.add("CLIPTextEncode", 1, "negative prompt", 360, clip=loader[1], text=SD15_NEGATIVE if sd15 else "")[0]
    hook = g.add("CreateHookLoraModelOnly", 1, "the LoRA as a hook", lora_name=SD15_LORA if sd15 else DEMO_LORA,
                 strength_model=1.0)[0]
    concept = g.add("ConditioningSetProperties", 1, "concept = base + LoRA", cond_NEW=base, strength=1.0,
                    set_cond_area="default", hooks=hook)[0]
    g.note(LORA_NOTE, 1)
    latent = image_latent(g, sd15)
    judge = judge_for(g, sd15, 2)
    swept = g.add("CISSweep", 2, model=loader[0], base=base, concept=concept, negative=negative, latent=latent,
                  vae=loader[2], judge=judge, judge_text="a watercolor painting" if sd15 else "green", seed=0,
                  seed_count=16 if sd15 else 8, insert_steps="all", steps=20, cfg=7.0 if sd15 else 4.0,
                  sampler_name="euler", scheduler="normal", threshold=0.5,
                  run_name="sd15-lora-lock-in" if sd15 else "demo-green-lora", contrast="a photo" if sd15 else "")
    g.add("SaveImage", 3, "CIS curve", images=swept["CIS curve"], filename_prefix="pci/lora_cis_curve")
    g.add("SaveImage", 3, "timeline grid", images=swept["timeline grid"], filename_prefix="pci/lora_timeline")
    g.add("PreviewAny", 4, "table", source=swept["table"])
    return [["CIS curve"], ["timeline grid"]]


WAN_UNET, WAN_CLIP, WAN_VAE = ("wan2.1_t2v_1.3B_fp16.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                               "wan_2.1_vae.safetensors")
WAN_NOTE = ("Wan 2.1 text-to-video, 1.3B (an 8 GB card runs it): put " + WAN_UNET + " in models/diffusion_models, "
            + WAN_CLIP + " in models/text_encoders and " + WAN_VAE + " in models/vae (the files of ComfyUI's own Wan "
            "2.1 example), and an open_clip ViT-B-32 weights file in models/pci_judges. A clip is one trial: the "
            "judge scores 8 of its frames, evenly spaced, and 'share of yes' makes the clip's verdict (PCI Judge "
            "Loader's clip_rule / clip_frames). 33 frames at 480x832; fewer frames or seeds run faster.")


def wan_cis_sweep(g: Graph):
    """CIS Sweep on Wan 2.1 text-to-video: when does a concept lock in across a clip?"""
    unet = g.add("UNETLoader", 0, unet_name=WAN_UNET, weight_dtype="default")[0]
    clip = g.add("CLIPLoader", 0, clip_name=WAN_CLIP, type="wan")[0]
    vae = g.add("VAELoader", 0, vae_name=WAN_VAE)[0]
    g.note(WAN_NOTE, 0)
    base = g.add("CLIPTextEncode", 1, "base prompt", 360, clip=clip, text="a dog running on a beach")[0]
    concept = g.add("CLIPTextEncode", 1, "concept prompt", 360, clip=clip, text="a dog running on a beach in the snow")[0]
    negative = g.add("CLIPTextEncode", 1, "negative prompt", 360, clip=clip, text="blurry, static, low quality")[0]
    latent = g.add("EmptyHunyuanLatentVideo", 1, width=832, height=480, length=33, batch_size=1)[0]
    judge = g.add("PCIJudgeLoader", 1, backend="clip", model=SD15_JUDGE_ARCH, weights=SD15_JUDGE_WEIGHTS,
                  clip_rule="share of yes", clip_frames=8)[0]
    swept = g.add("CISSweep", 2, model=unet, base=base, concept=concept, negative=negative, latent=latent, vae=vae,
                  judge=judge, judge_text="snow", seed=0, seed_count=8, insert_steps="every 2", steps=30, cfg=6.0,
                  sampler_name="uni_pc", scheduler="simple", threshold=0.5, run_name="wan-snow", contrast="a beach")
    g.note("Each cell of the timeline grid shows a clip's first, middle and last frames; the clips of the grid's "
           "cells are saved as animated WebP in output/pci/<run_name>/clips/.", 2)
    g.add("SaveImage", 3, "CIS curve", images=swept["CIS curve"], filename_prefix="pci/wan_cis_curve")
    g.add("SaveImage", 3, "timeline grid", images=swept["timeline grid"], filename_prefix="pci/wan_timeline")
    g.add("PreviewAny", 4, "table", source=swept["table"])
    return [["CIS curve"]]


DEMO_WORKFLOWS = {
    "concept_insertion_demo": concept_insertion,
    "judge_demo_images": judge_images,
    "edit_input_image_demo": lambda g: best_timestep_edit(g, image=True),
    "cis_sweep_demo": cis_sweep,
    "cis_study_demo": cis_study,
    "best_timestep_edit_demo": best_timestep_edit,
    "find_lock_in_then_edit_demo": find_lock_in_then_edit,
    "lora_insertion_demo": lora_insertion,
}
SD15_WORKFLOWS = {
    "sd15_concept_insertion": lambda g: concept_insertion(g, sd15=True),
    "sd15_judge_images": lambda g: judge_images(g, sd15=True),
    "sd15_edit_input_image": lambda g: best_timestep_edit(g, sd15=True, image=True),
    "sd15_cis_sweep": lambda g: cis_sweep(g, sd15=True),
    "sd15_cis_study": lambda g: cis_study(g, sd15=True),
    "sd15_find_lock_in_then_edit": lambda g: find_lock_in_then_edit(g, sd15=True),
    "sd15_lora_insertion": lambda g: lora_insertion(g, sd15=True),
    "wan21_cis_sweep_video": wan_cis_sweep,  # needs files nobody has here: a graph screenshot as its thumbnail
}


# ------------------------------------------------------------------------------------------ host

def host_object_info():
    from pci_cluster.headless import Headless
    from workflow_api import node_info
    host = Headless(os.environ["COMFYUI_PATH"])
    return host, {name: node_info(cls) for name, cls in host.nodes.NODE_CLASS_MAPPINGS.items()}


def example_input(host):
    """workflows/pci_example_input.png (a rendered demo-world picture), made when missing and put into the
    host's input/ as the pack does when it loads."""
    from PIL import Image
    from pci_core.demo import demo_model, world
    path = WORKFLOWS / EXAMPLE_INPUT
    if not path.exists():
        picture = world.render(world.parse_prompt(DEMO_BASE), size=demo_model.IMAGE_SIZE)
        Image.fromarray((picture * 255).round().astype("uint8")).save(path)
        host.glue("examples").install_example_inputs()


def build(make, object_info) -> tuple[dict, str]:
    g = Graph(object_info)
    thumbnail_rows = make(g)
    return g.to_ui(), thumbnail_rows


def thumbnail(host, workflow: dict, object_info: dict, rows: list[list[str]], path: Path):
    """Run the workflow in the host and compose its output images into path, a 512x512 .jpg: rows of
    nodes named by title (a node's batch: up to 4 images, 4 of one node as 2x2); small images are
    enlarged with nearest neighbours so the demo's 64x64 pixels stay sharp."""
    import folder_paths
    from PIL import Image
    from workflow_api import fresh_run_names, to_api
    ok, events, outputs = host.run(fresh_run_names(to_api(workflow, object_info)))
    if not ok:
        raise RuntimeError(f"{path.stem}: {[d for e, d in events if e in ('execution_error', 'validation_error')]}")
    by_title = {n.get("title", n["type"]): str(n["id"]) for n in workflow["nodes"]}

    def images_of(title):
        found = outputs[by_title[title]]["images"]
        return [Image.open(Path(folder_paths.get_directory_by_type(i["type"])) / i["subfolder"] / i["filename"])
                .convert("RGB") for i in found[:4]]

    tiles = [[im for title in row for im in images_of(title)] for row in rows]
    if len(tiles) == 1 and len(tiles[0]) == 4:
        tiles = [tiles[0][:2], tiles[0][2:]]
    strips = [_strip(row) for row in tiles]
    width = max(s.width for s in strips)
    strips = [s.resize((width, round(s.height * width / s.width)), Image.LANCZOS) for s in strips]
    sheet = Image.new("RGB", (width, sum(s.height for s in strips) + 4 * (len(strips) - 1)), (24, 24, 24))
    y = 0
    for strip in strips:
        sheet.paste(strip, (0, y))
        y += strip.height + 4
    sheet.thumbnail((512, 512), Image.LANCZOS)
    canvas = Image.new("RGB", (512, 512), (24, 24, 24))
    canvas.paste(sheet, ((512 - sheet.width) // 2, (512 - sheet.height) // 2))
    canvas.save(path, quality=90)


def _strip(images: list):
    """Images side by side at one height; small ones (under 256 px) enlarged x4 with nearest neighbours."""
    from PIL import Image
    images = [im.resize((im.width * 4, im.height * 4), Image.NEAREST) if max(im.size) < 256 else im for im in images]
    height = max(im.height for im in images)
    images = [im.resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in images]
    strip = Image.new("RGB", (sum(im.width for im in images) + 4 * (len(images) - 1), height), (24, 24, 24))
    x = 0
    for im in images:
        strip.paste(im, (x, 0))
        x += im.width + 4
    return strip


def graph_only(shot):
    """The screenshot cropped to the nodes (pixels brighter than the canvas), the canvas toolbar left out."""
    import numpy as np
    body = shot.crop((0, 0, shot.width, shot.height - 80))
    ys, xs = np.nonzero(np.asarray(body.convert("L")) > 70)
    return body.crop((max(xs.min() - 16, 0), max(ys.min() - 16, 0), xs.max() + 16, ys.max() + 16))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thumbnails", action="store_true", help="run the demo workflows, save .jpg thumbnails")
    parser.add_argument("--graph-shots", type=Path, help="folder of <name>.png graph screenshots (browser tier) "
                                                         "to use as the SD1.5 variants' thumbnails")
    parser.add_argument("--only", nargs="+", help="thumbnails of these workflows only (the JSON is always rewritten)")
    args = parser.parse_args()
    host, object_info = host_object_info()
    example_input(host)
    for name, make in {**DEMO_WORKFLOWS, **SD15_WORKFLOWS}.items():
        workflow, thumb_rows = build(make, object_info)
        (WORKFLOWS / f"{name}.json").write_text(json.dumps(workflow, indent=1) + "\n")
        print("wrote", WORKFLOWS / f"{name}.json")
        if args.thumbnails and name in DEMO_WORKFLOWS and (not args.only or name in args.only):
            thumbnail(host, workflow, object_info, thumb_rows, WORKFLOWS / f"{name}.jpg")
            print("wrote", WORKFLOWS / f"{name}.jpg")
        if args.graph_shots and name in SD15_WORKFLOWS and (args.graph_shots / f"{name}.png").exists():
            from PIL import Image
            shot = graph_only(Image.open(args.graph_shots / f"{name}.png").convert("RGB"))
            shot.thumbnail((512, 512), Image.LANCZOS)
            canvas = Image.new("RGB", (512, 512), (24, 24, 24))
            canvas.paste(shot, ((512 - shot.width) // 2, (512 - shot.height) // 2))
            canvas.save(WORKFLOWS / f"{name}.jpg", quality=90)
            print("wrote", WORKFLOWS / f"{name}.jpg", "(graph screenshot)")


if __name__ == "__main__":
    main()
