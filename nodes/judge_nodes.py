"""PCI Judge Loader and CIS Judge: does each image show the concept? Thin skins over pci_core.judges."""
import os

import comfy.model_management
import folder_paths
from comfy_api.latest import io

from ..pci_core import judges
from ..pci_core.judges.vqa import PROTOCOLS as VQA_PROTOCOLS
from .comfy_glue import demo_adapter, internals, managed_judges, workflow_paths

JUDGE_FOLDER = "pci_judges"  # models/pci_judges: open_clip weight files and transformers model folders
folder_paths.add_model_folder_path(JUDGE_FOLDER, os.path.join(folder_paths.models_dir, JUDGE_FOLDER))
NO_WEIGHTS = "none (rule judge)"
Judge = io.Custom("PCI_JUDGE")


def weights_choices() -> list[str]:
    """Model folders (a transformers config.json, or open_clip's open_clip_config.json, inside) and weight files
    in models/pci_judges; none for the rule judge."""
    files = folder_paths.get_filename_list(JUDGE_FOLDER)
    folders = sorted({os.path.dirname(f) for f in files if os.path.basename(f) in ("config.json", "open_clip_config.json")
                      and os.path.dirname(f)})
    weights = [f for f in files if os.path.splitext(f)[1].lower() in folder_paths.supported_pt_extensions
               and not any(f.startswith(d + os.sep) for d in folders)]
    return [NO_WEIGHTS] + folders + weights


class PCIJudgeLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PCIJudgeLoader",
            display_name="PCI Judge Loader",
            category="PCI",
            description="A judge that scores whether images show a concept: rule (the demo world's exact pixel "
                        "judge), clip (open_clip zero-shot) or vqa (a vision-language model: P(yes), or the paper's "
                        "A/B answer). Weights come from models/pci_judges or an explicit path; nothing is "
                        "downloaded. ComfyUI manages the judge's memory as its own models': loaded onto the device "
                        "to judge, offloaded when the UNet needs the room, freed by Unload models.",
            inputs=[
                io.Combo.Input("backend", options=[demo_adapter.RULE_BACKEND, *judges.BACKENDS], default=demo_adapter.RULE_BACKEND,
                               tooltip="rule: the demo world's exact pixel judge; clip: open_clip zero-shot; "
                                       "vqa: a vision-language model's P(yes)"),
                io.String.Input("model", default="ViT-B-32", tooltip="clip: open_clip architecture name of the "
                                "weights (e.g. ViT-B-32, ViT-L-14); a folder as open_clip publishes it (with "
                                "open_clip_config.json) names its own; ignored by rule and vqa"),
                io.Combo.Input("weights", options=weights_choices(), tooltip="clip: a weights file, or an open_clip "
                               "folder as published (open_clip_config.json + open_clip_model.safetensors); vqa: a "
                               "transformers model folder, e.g. Qwen2.5-VL-3B-Instruct (all in models/pci_judges); "
                               "rule: none"),
                io.Combo.Input("device", options=["auto", "cpu", "cuda"], default="auto",
                               tooltip="auto: ComfyUI's main device; a device this machine lacks is an "
                                       "error that lists the available ones"),
                io.String.Input("weights_path", optional=True, default="",
                                tooltip="A file (clip) or folder (vqa) inside models/pci_judges, by its path; overrides "
                                        "weights"),
                io.String.Input("template", optional=True, default="", tooltip="clip: prompt templates with {}, "
                                "separated by | (default 'a photo of {}.'); vqa: the question with {concept}"),
                io.Combo.Input("vqa_protocol", optional=True, options=list(VQA_PROTOCOLS), default=VQA_PROTOCOLS[0],
                               tooltip="vqa: p(yes) = the probability of 'yes' from the answer logits (a soft score); "
                                       "official = the paper's judge: A = YES / B = NO, one greedy token, a yes/no "
                                       "(score 1 or 0)"),
                io.Combo.Input("clip_rule", optional=True, options=list(judges.CLIP_RULES), default="mean",
                               tooltip="Video models: a clip's verdict from its frames' scores: their mean, the share "
                                       "of frames judged yes (score >= 0.5), the least (every frame must show it) or "
                                       "the most (one frame is enough); still images are judged one by one"),
                io.Int.Input("clip_frames", optional=True, default=judges.DEFAULT_CLIP_FRAMES, min=0, max=1024,
                             tooltip="Video models: how many frames of each clip the judge looks at, evenly spaced "
                                     "with the first and last (0 = every frame)"),
            ],
            outputs=[Judge.Output(display_name="judge", tooltip="The loaded judge, for CIS Judge")],
        )

    @classmethod
    def execute(cls, backend, model, weights, device, weights_path="", template="",
                vqa_protocol=VQA_PROTOCOLS[0], clip_rule="mean", clip_frames=judges.DEFAULT_CLIP_FRAMES) -> io.NodeOutput:
        internals.require("PCIJudgeLoader")
        if backend == demo_adapter.RULE_BACKEND:
            judges.check_device(comfy.model_management.get_torch_device() if device == "auto" else device)
            return io.NodeOutput(demo_adapter.rule_judge().set_clip_rule(clip_rule, clip_frames))
        options = {"protocol": vqa_protocol} if backend == "vqa" else {}
        options.update(clip_rule=clip_rule, clip_frames=clip_frames)
        if template.strip() and backend == "clip":
            options["templates"] = [t.strip() for t in template.split("|")]
        elif template.strip() and backend == "vqa":
            options["question"] = template.strip()
        if weights_path.strip():
            weights = str(workflow_paths.model_file(weights_path, JUDGE_FOLDER, "weights_path"))
        else:
            weights = workflow_paths.listed(weights, weights_choices(), "weights")  # found in models/pci_judges
            weights = None if weights == NO_WEIGHTS else weights
        return io.NodeOutput(managed_judges.load(backend, model, weights, device,
                                                 folder_paths.get_folder_paths(JUDGE_FOLDER), **options))


class CISJudge(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CISJudge",
            display_name="CIS Judge",
            category="PCI",
            description="Scores in [0, 1] of how much each image shows the concept, a yes/no per image "
                        "(score >= threshold is yes), a readable summary and the images with their scores drawn.",
            inputs=[
                io.Image.Input("images", tooltip="Images to judge (the rule judge needs square ones)"),
                Judge.Input("judge", tooltip="From PCI Judge Loader"),
                io.String.Input("concept", default="red", tooltip="The judge text: what to look for, e.g. 'a red "
                                "circle' (the rule judge requires every attribute it names)"),
                io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="A score >= threshold counts as yes"),
                io.String.Input("contrast", optional=True, default="", tooltip="clip: what the concept is told "
                                "apart from, e.g. the base prompt (empty: 'a photo'); ignored by rule and vqa"),
            ],
            outputs=[
                io.Float.Output("scores", display_name="scores", is_output_list=True,
                                tooltip="One score in [0, 1] per image"),
                io.Boolean.Output("decisions", display_name="decisions", is_output_list=True,
                                  tooltip="Per image: score >= threshold"),
                io.String.Output("summary", display_name="summary", tooltip="How many images show the concept, and the scores"),
                io.Image.Output("annotated", display_name="annotated images", tooltip="The images with their score drawn on top"),
            ],
        )

    @classmethod
    def execute(cls, images, judge, concept, threshold, contrast="") -> io.NodeOutput:
        internals.require("CISJudge")
        scores = judge.score(images, concept, contrast or None)
        decisions = judge.decide(scores, threshold)
        summary = judges.summarize(concept, scores, decisions, threshold)
        return io.NodeOutput(scores.tolist(), decisions.tolist(), summary,
                             judges.annotate(images, scores, decisions))


NODES = [PCIJudgeLoader, CISJudge]
