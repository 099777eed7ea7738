"""Edit evaluation on the demo world: does the CIS-chosen insertion step beat the usual ways to edit?
(The tables and verdicts of its results: pci_core.demo.edit_report.)

For each edit type (colour, size, shape, background, position) the source prompt names the shape
and the attribute the edit changes, and the edit prompt changes that one value; every other
attribute is left to the seed, so preservation measures what the prompt does not pin down.

- k* comes from a CIS sweep on separate helper seeds (every k, pixel judge on the edited
  attribute) and a rule of pci_core.edit_rules ("tau" at a level, or "best score").
- Generated sources (seed s, source prompt): PCI at k* against full regeneration with the edit
  prompt (k = 0), a fixed middle step (k = T/2), and img2img of the source latent at matching
  strength (noised to sigma_k* with fresh noise and denoised with the edit prompt, as KSampler with
  denoise = (T - k*)/T does).
- Per seed, the "latest yes" rule (edit_rules.choose_latest_yes): the seed's edit at every k (one
  branching run), judged, k = the latest yes; its fair twin, img2img with per-seed strength chosen by
  the same judge; and the same for input images (the inverted latents per k).
- Input images (world.render at the model's 64 px, not model samples): DDIM-style inversion with
  the source prompt (euler over the flipped sigmas) to sigma_k*, then steps k*..T with the edit
  prompt, against inversion + full regeneration (k = 0) and img2img of the encoded image; and the
  reconstruction without an edit (source prompt after the inversion).

Edit success: the pixel judge reads the edit's value of the edited attribute. Preservation: it reads
every other attribute as it reads it on the source. SSIM / PSNR via pci_core.edit_metrics (torchmetrics).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .. import edit_metrics, edit_rules
from ..cis import CISResult
from . import demo_model, pipeline, world
from .latent_edits import denoise_from, img2img, invert, prompt_denoisers

EDITS: dict[str, tuple[str, str]] = {
    "colour": ("a red circle", "a blue circle"),
    "size": ("a large circle", "a small circle"),
    "shape": ("a red circle", "a red square"),
    "background": ("a circle on a black background", "a circle on a white background"),
    "position": ("a circle on the left", "a circle on the right"),
}
HELPER_SEED = 1000        # CIS sweep seeds start here, apart from the evaluation seeds (0..)
INPUT_IMAGE_SEED = 7      # rendering seed of the input images


@dataclass
class EvalConfig:
    seeds: int = 50
    helper_seeds: int = 16
    edits: Sequence[str] = tuple(EDITS)
    # (rule, level or weight): the paper's window (tau 0.5, the node's default), a surer edit (tau 0.9),
    # and the best-score rule on the helper probe (SSIM to the source as preservation)
    variants: Sequence[tuple[str, float]] = (("tau", 0.5), ("tau", 0.9), ("best score", 0.5))
    inversion_cfg: float = 1.0
    per_seed_img2img: bool = True  # the fair twin of "latest yes": img2img with per-seed strength by the same judge
    settings: pipeline.SamplerSettings = field(default_factory=pipeline.SamplerSettings)
    negative: str = ""


QUICK_EDITS = ("colour",)


def quick_config() -> EvalConfig:
    """A smoke run for the tests (seconds): 4 seeds, one edit, 8 steps."""
    return EvalConfig(seeds=4, helper_seeds=4, edits=QUICK_EDITS, settings=pipeline.SamplerSettings(steps=8))


# ---------------------------------------------------------------- measuring edits

def changed_attributes(source: str, edit: str) -> dict[str, str]:
    """What the edit changes: the edit prompt's attribute values that the source prompt does not name alike."""
    before, after = world.parse_prompt(source), world.parse_prompt(edit)
    changed = {a: v for a, v in after.items() if before.get(a) != v}
    if not changed:
        raise ValueError(f"edit {edit!r} changes no attribute of source {source!r}")
    return changed


def read_all(images: np.ndarray) -> list[dict]:
    return [world.read_attributes(im) for im in images]


def edit_scores(source_reads: list[dict], edited: np.ndarray, wanted: dict[str, str]) -> dict[str, np.ndarray]:
    """Per image: edit success (every edited attribute read as wanted) and preservation (every other
    attribute read as on the source)."""
    reads = read_all(edited)
    others = [a for a in world.ATTRIBUTES if a not in wanted]
    success = np.array([all(r[a] == v for a, v in wanted.items()) for r in reads], dtype=np.float64)
    kept = np.array([all(r[a] == s[a] for a in others) for r, s in zip(reads, source_reads)], dtype=np.float64)
    return {"success": success, "preservation": kept}


def measure(source: np.ndarray, edited: np.ndarray, wanted: dict[str, str], source_reads=None) -> dict[str, float]:
    source_reads = source_reads if source_reads is not None else read_all(source)
    scores = edit_scores(source_reads, edited, wanted)
    s, e = torch.from_numpy(source), torch.from_numpy(edited)
    return {"success": float(scores["success"].mean()), "preservation": float(scores["preservation"].mean()),
            "ssim": float(edit_metrics.ssim(s, e).mean()), "psnr": float(edit_metrics.psnr(s, e).clamp(max=100).mean()),
            "n": len(edited)}


# ---------------------------------------------------------------- sampling pieces (standalone engine).no_grad()
def helper_sweep(model, source: str, edit: str, seeds: Sequence[int], settings, negative: str = ""):
    """Every k on the helper seeds: (CISResult of the edited attribute, SSIM (S, K) of each image to its
    seed's k = T image, the source)."""
    ks = list(range(settings.steps + 1))
    latents = pipeline.insertion_latents(model, source, edit, seeds, ks, settings, negative)
    images = model.decode(latents.reshape(-1, *latents.shape[2:])).reshape(len(seeds), len(ks), 64, 64, 3)
    wanted = changed_attributes(source, edit)
    scores = world.judge_batch(images.reshape(-1, 64, 64, 3).numpy(), wanted).reshape(len(seeds), len(ks))
    kept = torch.stack([edit_metrics.ssim(images[:, -1], images[:, i]) for i in range(len(ks))], dim=1).numpy()
    sigmas = pipeline.sigmas_for(settings)
    result = CISResult(list(seeds), ks, settings.steps, sigmas.tolist(), scores, 0.5, edit,
                       {"sampler": settings.sampler, "scheduler": settings.scheduler, "cfg": settings.cfg,
                        "base": source, "concept": edit, "judge": "rule"})
    return result, kept


def choose_all(result: CISResult, kept: np.ndarray, variants) -> dict[str, edit_rules.StepChoice]:
    """The step each rule variant picks from the helper sweep, by label ("tau 0.5", "best score w=0.5")."""
    success, preservation = edit_rules.probe_curves(result.scores, kept)
    out = {}
    for rule, value in variants:
        if rule == "best score":
            out[f"best score w={value:g}"] = edit_rules.choose_by_score(result.ks, success, preservation, value)
        else:
            out[f"tau {value:g}"] = edit_rules.choose_by_tau(result, value)
    return out


# ---------------------------------------------------------------- the per-seed rule ("latest yes")

LATEST_YES = "latest yes"


def latest_yes_ks(yes: np.ndarray, ks: Sequence[int]) -> list[int]:
    """Per seed (rows of yes (S, K)), the step edit_rules.choose_latest_yes picks."""
    return [edit_rules.choose_latest_yes(ks, row).k for row in yes]


def latest_yes_search(edit_at, n: int, steps: int, wanted: dict[str, str]) -> tuple[np.ndarray, list[int]]:
    """The latest-yes rule for edits without a branching run (img2img, inverted images): try k = T, T-1, .. 0
    on the images not yet decided (edit_at(k, indices) -> images), keep each image's first yes (= its largest
    k); images never judged a yes get k = 0, as choose_latest_yes. Same choice as judging every k, cheaper."""
    chosen, out = [None] * n, [None] * n
    for k in range(steps, -1, -1):
        idx = [i for i in range(n) if chosen[i] is None]
        if not idx:
            break
        images = edit_at(k, idx).numpy()
        yes = world.judge_batch(images, wanted) >= 0.5
        for j, i in enumerate(idx):
            if yes[j] or k == 0:
                chosen[i], out[i] = k, images[j]
    return np.stack(out), chosen


def img2img_latest_yes(model, to_edit, latents: torch.Tensor, sigmas, settings, seeds, wanted):
    """The fair twin of the per-seed rule: img2img of each latent with its strength chosen by the same judge
    (the latest k whose img2img edit shows the edit): (images, k per seed)."""
    return latest_yes_search(lambda k, idx: model.decode(img2img(to_edit, latents[idx], k, sigmas, settings,
                                                                 [seeds[i] for i in idx])), len(seeds),
                             settings.steps, wanted)


# ---------------------------------------------------------------- one edit type

@torch.no_grad()
def evaluate_edit(model, name: str, config: EvalConfig) -> dict:
    source, edit = EDITS[name]
    s = config.settings
    wanted = changed_attributes(source, edit)
    helper = list(range(HELPER_SEED, HELPER_SEED + config.helper_seeds))
    result, kept = helper_sweep(model, source, edit, helper, s, config.negative)
    choices = choose_all(result, kept, config.variants)
    chosen = sorted({c.k for c in choices.values()})
    seeds = list(range(config.seeds))
    sigmas = pipeline.sigmas_for(s)
    to_source, to_edit = prompt_denoisers(model, source, edit, s, config.negative)
    per_seed_k = {}
    generated = _generated_edits(model, config, source, edit, wanted, choices, chosen, seeds, sigmas, to_edit, per_seed_k)
    inputs, reconstruction, vae_psnr = _input_edits(model, config, source, edit, wanted, choices, chosen, seeds, sigmas,
                                                    to_source, to_edit, per_seed_k)
    return {"edit": name, "source": source, "target": edit, "choices": choices, "generated": generated,
            "inputs": inputs, "reconstruction": reconstruction, "vae_psnr": vae_psnr, "cis": result,
            "per_seed_k": per_seed_k}


def _generated_edits(model, config: EvalConfig, source, edit, wanted, choices, chosen, seeds, sigmas, to_edit,
                     per_seed_k: dict) -> dict:
    """Generated sources: every k in one branching run (the per-seed rule needs them all; k = T is the source)."""
    s, T = config.settings, config.settings.steps
    generated = {}
    ks = list(range(T + 1))
    latents = pipeline.insertion_latents(model, source, edit, seeds, ks, s, config.negative)
    images = {k: model.decode(latents[:, i]).numpy() for i, k in enumerate(ks)}
    src, src_latents = images[T], latents[:, T]
    src_reads = read_all(src)
    for label, c in choices.items():
        generated[f"PCI, {label}: k={c.k}"] = measure(src, images[c.k], wanted, src_reads)
    yes = np.stack([world.judge_batch(images[k], wanted) >= 0.5 for k in ks], axis=1)  # (S, K) per-seed judge
    per_seed = latest_yes_ks(yes, ks)
    generated[f"PCI, {LATEST_YES} (per seed)"] = measure(
        src, np.stack([images[k][i] for i, k in enumerate(per_seed)]), wanted, src_reads)
    per_seed_k["generated"] = per_seed
    generated["regenerate (k=0)"] = measure(src, images[0], wanted, src_reads)
    generated[f"fixed middle k={T // 2}"] = measure(src, images[T // 2], wanted, src_reads)
    for k in chosen:
        edited = model.decode(img2img(to_edit, src_latents, k, sigmas, s, seeds)).numpy()
        generated[f"img2img, denoise {(T - k) / T:.2f} (k={k})"] = measure(src, edited, wanted, src_reads)
    if config.per_seed_img2img:
        edited, per_seed_k["img2img"] = img2img_latest_yes(model, to_edit, src_latents, sigmas, s, seeds, wanted)
        generated[f"img2img, per-seed {LATEST_YES}"] = measure(src, edited, wanted, src_reads)
    return generated


def _input_edits(model, config: EvalConfig, source, edit, wanted, choices, chosen, seeds, sigmas, to_source, to_edit,
                 per_seed_k: dict) -> tuple[dict, dict, float]:
    """Input images: rendered by the world (the source prompt's attributes fixed, the rest random), inverted;
    (edits, reconstructions by the source prompt, the autoencoder's PSNR)."""
    s, T = config.settings, config.settings.steps
    inputs = {}
    rendered, attrs = world.render_batch(config.seeds, INPUT_IMAGE_SEED, world.parse_prompt(source),
                                         size=demo_model.IMAGE_SIZE)
    x0 = model.encode(torch.from_numpy(rendered))
    invert_with, _ = prompt_denoisers(model, source, edit, s, config.negative, cfg=config.inversion_cfg)
    levels = invert(invert_with, x0, sigmas)
    decode = lambda lat: model.decode(lat).numpy()
    for label, c in choices.items():
        inputs[f"inversion + PCI, {label}: k={c.k}"] = measure(
            rendered, decode(denoise_from(to_edit, levels[c.k], sigmas[c.k:], s, seeds)), wanted, attrs)
    edited, per_seed_k["inputs"] = latest_yes_search(
        lambda k, idx: model.decode(denoise_from(to_edit, levels[k][idx], sigmas[k:], s, [seeds[i] for i in idx])),
        len(seeds), T, wanted)
    inputs[f"inversion + PCI, {LATEST_YES} (per image)"] = measure(rendered, edited, wanted, attrs)
    if config.per_seed_img2img:
        edited, per_seed_k["inputs img2img"] = img2img_latest_yes(model, to_edit, x0, sigmas, s, seeds, wanted)
        inputs[f"img2img, per-image {LATEST_YES}"] = measure(rendered, edited, wanted, attrs)
    regenerated = decode(denoise_from(to_edit, levels[0], sigmas, s, seeds))
    inputs["inversion + regenerate (k=0)"] = measure(rendered, regenerated, wanted, attrs)
    reconstruction = {}
    for k in chosen:
        inputs[f"img2img, denoise {(T - k) / T:.2f} (k={k})"] = measure(
            rendered, decode(img2img(to_edit, x0, k, sigmas, s, seeds)), wanted, attrs)
        kept = decode(denoise_from(to_source, levels[k], sigmas[k:], s, seeds))
        reconstruction[k] = measure(rendered, kept, {}, attrs)
    reconstruction[0] = measure(rendered, decode(denoise_from(to_source, levels[0], sigmas, s, seeds)), {}, attrs)
    vae_psnr = float(edit_metrics.psnr(torch.from_numpy(rendered), model.decode(x0)).mean())
    return inputs, reconstruction, vae_psnr


def run(config: EvalConfig, weights: str | None = None, log=print) -> list[dict]:
    model = demo_model.load(weights)
    results = []
    for name in config.edits:
        if name not in EDITS:
            raise ValueError(f"edit {name!r}: valid edits are {', '.join(EDITS)}")
        t = time.time()
        results.append(evaluate_edit(model, name, config))
        log(f"{name} ({time.time() - t:.0f}s): " + "; ".join(f"{label}: {c.reason}"
                                                           for label, c in results[-1]["choices"].items()))
    return results
