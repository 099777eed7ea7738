"""GPU check (issue 9): the pack where users run it, inside real ComfyUI. Not run by CI.

On a CUDA machine, for the demo model (64 px) and an SD1.5-architecture UNet (random init, fp16,
512 px), it
1. checks the switch step: ConceptInsertionSampler at k against ComfyUI's one-pass
   ConditioningSetTimestepRange graph (max diff and the tolerance for GPU float noise, printed);
2. times a full CIS sweep (4 seeds x every k of 20 euler steps) three ways: one node run per
   (seed, k) at batch 1; one run per k batched over the seeds (the insertion guider with each
   seed's own noise); the branching engine in one run (nodes/comfy_glue/branching.py sweep_latents) for several
   max_batch values, the device policy's choice (max_batch_for_device) included;
3. measures the limit: the sweep's unique rows / the UNet's best rows per second through ComfyUI's
   own CFGGuider at batch 1..128;
4. puts a judge in the loop (issue 19): the sweep's images decoded and judged by a clip judge (a random
   ViT-L-14; tiny with --small) or, with --vqa-folder, a Qwen2.5-VL folder (vqa), once managed by
   ComfyUI (the pack's loader) and once as a plain module left on the device, with the device's peak
   memory for the sweep + judging each way; --budget-gb N makes ComfyUI act as if the card had N GB
   (ComfyUI's --reserve-vram, total - N);
and prints a table of ratios and the largest image difference of each way against the naive loop.

    COMFYUI_PATH=/path/to/ComfyUI python bench/gpu_check.py            # CUDA
    COMFYUI_PATH=/path/to/ComfyUI python bench/gpu_check.py --budget-gb 12 --vqa-folder /models/Qwen2.5-VL-3B-Instruct
    COMFYUI_PATH=/path/to/ComfyUI python bench/gpu_check.py --small    # CPU, demo model, tiny (< 60 s)

(python = ComfyUI's Python.)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Plan:
    seeds: list[int]
    steps: int
    pixels: int
    max_batches: list[int | None]
    rate_batches: list[int]
    rate_steps: int
    models: list[str]
    clip_arch: str = "ViT-L-14"  # the judge in the loop: an open_clip architecture, random weights
    vqa_folder: str | None = None  # or a transformers VLM folder (e.g. Qwen2.5-VL-3B-Instruct)
    cfg: float = 4.0
    k_check: int = 0  # 0: steps // 2


FULL = Plan(seeds=[0, 1, 2, 3], steps=20, pixels=512, max_batches=[None, 16, 32, 64], rate_batches=[1, 2, 4, 8, 16, 32, 64, 128],
            rate_steps=5, models=["demo", "sd15"], clip_arch="ViT-L-14")
SMALL = Plan(seeds=[0, 1], steps=4, pixels=64, max_batches=[None, 2], rate_batches=[1, 4, 16], rate_steps=2,
             models=["demo"], clip_arch="pci-tiny-clip")


@dataclass
class Report:
    model: str
    device: str
    switch_diff: float = 0.0
    switch_tol: float = 0.0
    unique_rows: int = 0
    best_rows_per_s: float = 0.0
    best_rate_batch: int = 0
    policy_max_batch: int = 0
    times: dict[str, float] = field(default_factory=dict)   # way -> seconds
    diffs: dict[str, float] = field(default_factory=dict)   # way -> max |latent - per (seed, k) latent|
    judge: str = ""
    peak_gb: dict[str, float | None] = field(default_factory=dict)  # judge managed / plain -> peak GB (None: CPU)

    @property
    def limit_s(self) -> float:
        return self.unique_rows / self.best_rows_per_s


# ---------------------------------------------------------------- ComfyUI in-process

def start_comfy(comfy_path: str, cpu: bool, budget_gb: float | None = None):
    """Real ComfyUI with the pack loaded (pci_cluster.headless), on the CPU or ComfyUI's own device; with
    budget_gb, ComfyUI reserves all but that much of the card (its --reserve-vram, read at start-up)."""
    sys.path[:0] = [comfy_path, str(REPO)]
    if budget_gb is not None:
        import torch
        from comfy.cli_args import args
        args.reserve_vram = torch.cuda.get_device_properties(0).total_memory / 2 ** 30 - budget_gb
    from pci_cluster.headless import Headless
    return Headless(comfy_path, cpu=cpu)


def _sync():
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


CPU_SECONDS: dict[float, float] = {}  # wall seconds of a timed call -> this process's CPU seconds in it


def timed(fn):
    """(fn(), wall seconds); the process's CPU seconds go to CPU_SECONDS (steadier than wall time
    on a shared CPU, meaningless on a GPU)."""
    _sync()
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    _sync()
    wall = time.perf_counter() - t
    CPU_SECONDS[wall] = time.process_time() - c
    return out, wall


# ---------------------------------------------------------------- models

def demo_parts(host, pixels):
    import nodes as core
    model, clip, _ = host.glue("demo_adapter").load_demo()
    enc = lambda text: core.CLIPTextEncode().encode(clip, text)[0]
    latent = core.EmptyLatentImage().generate(pixels, pixels, 1)[0]
    return model, enc("a red circle on the left"), enc("a blue square on the right"), enc(""), latent


def sd15_parts(pixels):
    """An SD1.5-architecture UNet with random weights in fp16 through ComfyUI's own UNet loader path,
    and random CLIP-L-shaped conditionings (no text encoder needed to time the UNet)."""
    import comfy.sd
    import nodes as core
    import torch
    from pci_cluster.testbed.sd15_checkpoint import random_value, sd15_shapes
    g = torch.Generator().manual_seed(0)
    sd = {k: random_value(k, s, d, g).half() for k, (s, d) in sd15_shapes().items() if k.startswith("model.diffusion_model.")}
    model = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": torch.float16})
    cond = lambda: [[torch.randn(1, 77, 768, generator=g), {}]]
    latent = core.EmptyLatentImage().generate(pixels, pixels, 1)[0]
    return model, cond(), cond(), cond(), latent


# ---------------------------------------------------------------- the three ways and the limit

def per_branch(node, model, base, concept, neg, latent, seeds, ks, steps, cfg):
    import torch
    rows = [node.execute(model, base, concept, neg, latent, s, steps, cfg, "euler", "normal", float(k), 1.0).args[0]["samples"]
            for s in seeds for k in ks]
    return torch.cat(rows).reshape(len(seeds), len(ks), *rows[0].shape[1:])


def per_k_batched(host, model, base, concept, neg, latent, seeds, ks, steps, cfg):
    """One guider run per k over all seeds, each seed with its own noise (the same images as per branch)."""
    import comfy.sample
    import comfy.samplers
    import torch
    from pci_core import schedule
    sigmas = host.glue("sampling").Sampling(model, neg, steps, cfg, "euler", "normal").sigmas()
    image = host.glue("internals").empty_latent(model, latent)
    noise = torch.cat([comfy.sample.prepare_noise(image, s) for s in seeds])
    out = []
    for k in ks:
        boundaries = torch.full((len(seeds),), schedule.insertion_boundary(sigmas, k), dtype=torch.float64)
        guider = host.glue("guider").ConceptInsertionGuider(model, base, concept, neg, cfg, boundaries, torch.arange(len(seeds)))
        out.append(guider.sample(noise, image.repeat(len(seeds), 1, 1, 1), comfy.samplers.sampler_object("euler"), sigmas,
                                 disable_pbar=True, seed=seeds[0]).float().cpu())
    return torch.stack(out, dim=1)


def unique_rows(n_seeds: int, ks: list[int], steps: int) -> int:
    """Rows the branching engine evaluates: per step, one trunk row per seed while some branch has not
    switched, plus one row per branch already switched."""
    return n_seeds * sum(int(any(k > i for k in ks)) + sum(k <= i for k in ks) for i in range(steps))


def rows_per_second(model, base, neg, latent, cfg, batches, steps):
    """{batch: conditioned rows per second} through ComfyUI's own CFGGuider (a warm-up run first)."""
    import comfy.samplers
    import torch
    sigmas = comfy.samplers.KSampler(model, steps, model.load_device, "euler", "normal", 1.0).sigmas
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(base, neg)
    guider.set_cfg(cfg)
    rates = {}
    for b in batches:
        image = latent["samples"].repeat(b, 1, 1, 1)
        noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(b))
        run = lambda: guider.sample(noise, image, comfy.samplers.sampler_object("euler"), sigmas, disable_pbar=True, seed=0)
        run()
        _, seconds = timed(run)
        rates[b] = b * steps / seconds
    return rates


def max_diff(a, b) -> float:
    return (a.float().cpu() - b.float().cpu()).abs().max().item()


def check_model(host, name: str, plan: Plan) -> Report:
    import comfy.model_management as mm
    import torch
    from pci_cluster.testbed.range_graphs import insertion_and_range
    pixels = 64 if name == "demo" else plan.pixels  # the demo world is 64 px
    model, base, concept, neg, latent = demo_parts(host, pixels) if name == "demo" else sd15_parts(pixels)
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    report = Report(model=f"{name} ({model.model.get_dtype()}, {pixels} px)", device=str(mm.get_torch_device()))
    steps, seeds, ks, cfg = plan.steps, plan.seeds, list(range(plan.steps + 1)), plan.cfg

    inserted, reference = insertion_and_range(host, model, base, concept, neg, latent, 0, steps, cfg, "euler", "normal",
                                              plan.k_check or steps // 2)
    report.switch_diff = max_diff(inserted, reference)
    # GPU kernels may pick other algorithms for the two graphs' (equal) batches: allow float noise
    # of the model's dtype, relative to the latent's scale.
    report.switch_tol = 0.0 if model.load_device.type == "cpu" else \
        8 * torch.finfo(model.model.get_dtype()).eps * reference.abs().max().item()

    naive, report.times["per (seed, k), batch 1"] = timed(
        lambda: per_branch(node, model, base, concept, neg, latent, seeds, ks, steps, cfg))
    batched, report.times["per k, batched over seeds"] = timed(
        lambda: per_k_batched(host, model, base, concept, neg, latent, seeds, ks, steps, cfg))
    report.diffs["per k, batched over seeds"] = max_diff(batched, naive)
    Sampling, sweep = host.glue("sampling").Sampling, host.glue("branching")
    run = lambda max_batch: Sampling(model, neg, steps, cfg, "euler", "normal", max_batch)
    report.policy_max_batch = run(0).for_latent(latent).max_batch
    sweep.sweep_latents(run(report.policy_max_batch), base, concept, latent, seeds, ks)  # warm-up of the batched shapes
    for max_batch in dict.fromkeys([*plan.max_batches, report.policy_max_batch]):
        label = f"branching, max_batch {max_batch or 'unbounded'}"
        if max_batch == report.policy_max_batch:
            label += " (policy)"
        (swept, _), report.times[label] = timed(lambda: sweep.sweep_latents(
            run(max_batch or len(seeds) * len(ks)), base, concept, latent, seeds, ks))
        report.diffs[label] = max_diff(swept, naive)
    rates = rows_per_second(model, base, neg, latent, cfg, plan.rate_batches, plan.rate_steps)
    report.best_rate_batch, report.best_rows_per_s = max(rates.items(), key=lambda kv: kv[1])
    report.unique_rows = unique_rows(len(seeds), ks, steps)
    judge_in_the_loop(host, report, plan, run(report.policy_max_batch), base, concept, latent, seeds, ks)
    return report


def judge_files(plan: Plan) -> tuple[str, str, str]:
    """(backend, model, weights) of the judge in the loop: a Qwen2.5-VL folder given, or an open_clip
    architecture with random weights written to a temporary file (no judge weights are downloaded)."""
    import tempfile
    if plan.vqa_folder:
        import folder_paths
        folder_paths.add_model_folder_path("pci_judges", str(Path(plan.vqa_folder).resolve().parent))
        return "vqa", "", plan.vqa_folder
    from pci_core.judges import tiny
    folder = Path(tempfile.mkdtemp(prefix="pci_gpu_check_"))
    import folder_paths
    folder_paths.add_model_folder_path("pci_judges", str(folder))  # judge files are read from there only
    tiny.register_tiny_clip(folder)
    return "clip", plan.clip_arch, str(tiny.save_clip(plan.clip_arch, folder, logit_scale=100.0))


def judge_in_the_loop(host, report: Report, plan: Plan, run, base, concept, latent, seeds, ks) -> None:
    """The sweep, then its images decoded and judged, twice: the judge managed by ComfyUI (offloaded while
    the UNet samples) and the same network as a plain module left on the device; the peak device memory
    of each (None on the CPU)."""
    import comfy.model_management as mm
    import torch
    backend, arch, weights = judge_files(plan)
    loader = host.nodes.NODE_CLASS_MAPPINGS["PCIJudgeLoader"]
    judge = loader.execute(backend, arch, "none (rule judge)", "auto", weights).args[0]
    report.judge = f"{judge.describe()}, {sum(p.numel() for p in judge.model.parameters()) / 1e6:.0f} M weights"
    sweep, vae = host.glue("branching"), host.glue("demo_adapter").load_demo()[2] if report.model.startswith("demo") else None
    for way in ("managed", "plain module"):
        mm.unload_all_models()  # (this also offloads the managed judge: move the plain one only after it)
        mm.soft_empty_cache()
        if way == "plain module":  # what the pack did before: the network stays where it was put
            judge.net.placement = None
            judge.net.module.to(judge.net.patcher.load_device)
            judge.net.device = judge.net.patcher.load_device
        cuda = torch.cuda.is_available() and run.model.load_device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        (latents, _), report.times[f"sweep + judge ({way})"] = timed(lambda: sweep.sweep_latents(
            run, base, concept, latent, seeds, ks))
        flat = latents.reshape(-1, *latents.shape[2:])
        if vae is not None:
            _, seconds = timed(lambda: sweep.decode_and_judge(vae, judge, flat, "a blue square", None, run.max_batch))
        else:  # the SD1.5 UNet has no VAE here: judge random images of its size
            images = torch.rand(flat.shape[0], plan.pixels, plan.pixels, 3)
            _, seconds = timed(lambda: judge.score(images, "an old person"))
        report.times[f"sweep + judge ({way})"] += seconds
        report.peak_gb[way] = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None


def table(report: Report, plan: Plan) -> str:
    naive = report.times["per (seed, k), batch 1"]
    peaks = ", ".join(f"{way} {'-' if gb is None else f'{gb:.2f} GB'}" for way, gb in report.peak_gb.items())
    lines = [f"\n{report.model} on {report.device}: {len(plan.seeds)} seeds x every k of {plan.steps} euler steps",
             f"switch step vs ConditioningSetTimestepRange graph: max diff {report.switch_diff:.3e} "
             f"(tolerance {report.switch_tol:.3e}) {'OK' if report.switch_diff <= report.switch_tol else 'FAILED'}",
             f"limit: {report.unique_rows} unique rows / {report.best_rows_per_s:.1f} rows/s "
             f"(CFGGuider, best at batch {report.best_rate_batch}) = {report.limit_s:.3f} s",
             f"{'way':40s} {'seconds':>9s} {'x naive':>8s} {'/ limit':>8s} {'cpu s':>8s} {'max |diff| vs naive':>20s}"]
    for way, seconds in report.times.items():
        diff = report.diffs.get(way)
        lines.append(f"{way:40s} {seconds:9.3f} {naive / seconds:8.2f} {seconds / report.limit_s:8.2f} "
                     f"{CPU_SECONDS.get(seconds, float('nan')):8.2f} {'-' if diff is None else f'{diff:.3e}':>20s}")
    lines.append(f"judge in the loop: {report.judge}; peak device memory of sweep + judging: {peaks}")
    return "\n".join(lines)


def run(host, plan: Plan) -> list[Report]:
    """Every check of the plan in an already started ComfyUI; prints the tables, returns the reports."""
    reports = []
    import torch
    for name in plan.models:
        with torch.inference_mode():  # as ComfyUI's executor runs every node
            report = check_model(host, name, plan)
        print(table(report, plan), flush=True)
        reports.append(report)
    return reports


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="CPU, demo model only, tiny sizes (< 60 s)")
    parser.add_argument("--budget-gb", type=float, default=None, help="act as a card of this many GB "
                        "(ComfyUI's --reserve-vram: the rest is reserved), e.g. 12")
    parser.add_argument("--vqa-folder", default=None, help="judge in the loop: this transformers VLM folder "
                        "(e.g. Qwen2.5-VL-3B-Instruct) instead of a random ViT-L-14 clip judge")
    args = parser.parse_args(argv)
    comfy_path = os.environ.get("COMFYUI_PATH")
    if not comfy_path:
        parser.error("set COMFYUI_PATH to a ComfyUI checkout (and run with its Python)")
    import torch
    if not args.small and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or use --small for the CPU check")
    host = start_comfy(comfy_path, cpu=args.small, budget_gb=args.budget_gb)
    import dataclasses
    reports = run(host, dataclasses.replace(SMALL if args.small else FULL, vqa_folder=args.vqa_folder))
    return 0 if all(r.switch_diff <= r.switch_tol for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
