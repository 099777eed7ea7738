"""A LoRA for the demo model, trained by the project (python -m pci_core train-lora), and applied here.

The shipped one, pci_demo_green.safetensors, turns every shape green whatever colour the prompt asks for:
it is trained on images rendered green under prompts naming another colour (or none), the base model and
its text encoder frozen, low-rank (rank 4) updates on the cross-attention and MLP layers of the UNet's
transformer blocks. Inserted at step k (ComfyUI: CreateHookLora on the concept conditioning), CIS(k)
says when the LoRA's look can still take hold.

The file is in ComfyUI's LoRA format: `diffusion_model.<layer>.lora_up.weight` (out, r),
`.lora_down.weight` (r, in) and `.alpha`, so the layer's weight becomes W + strength * (alpha / r) up @ down
(comfy.lora's LoRAAdapter), read by LoraLoaderModelOnly and CreateHookLora alike.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import schedule
from . import demo_model, world

LORA_FOLDER = Path(__file__).resolve().parent / "loras"
GREEN_LORA = "pci_demo_green.safetensors"
TARGETS = ("block.q", "block.kv", "block.proj2", "block.mlp.0", "block.mlp.2")  # in every attn_* block
RANK = 4


def target_layers(unet: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The Linear layers a demo LoRA adapts, by their name in the UNet."""
    return {name: m for name, m in unet.named_modules()
            if name.startswith("attn_") and name.endswith(TARGETS) and isinstance(m, torch.nn.Linear)}


class LoRALinear(torch.nn.Module):
    """A frozen Linear plus strength * (alpha / rank) * up @ down, as comfy.lora applies a LoRA."""

    def __init__(self, base: torch.nn.Linear, rank: int = RANK, alpha: float = RANK, strength: float = 1.0):
        super().__init__()
        self.base, self.scale = base, strength * alpha / rank
        self.down = torch.nn.Parameter(torch.randn(rank, base.in_features) / base.in_features ** 0.5)
        self.up = torch.nn.Parameter(torch.zeros(base.out_features, rank))  # starts as the base model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * F.linear(F.linear(x, self.down), self.up)


def _set(module: torch.nn.Module, name: str, child: torch.nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, leaf, child)


def attach(unet: torch.nn.Module, lora: dict[str, torch.Tensor] | None = None, strength: float = 1.0) -> dict:
    """The UNet's target layers wrapped in LoRALinear (in place): fresh ones, or the weights of a LoRA file's
    dict; returns {name: LoRALinear}."""
    wrapped = {}
    for name, layer in target_layers(unet).items():
        key = f"diffusion_model.{name}"
        rank = lora[f"{key}.lora_down.weight"].shape[0] if lora else RANK
        alpha = float(lora[f"{key}.alpha"]) if lora else float(RANK)
        wrapper = LoRALinear(layer, rank, alpha, strength)
        if lora:
            wrapper.down.data, wrapper.up.data = lora[f"{key}.lora_down.weight"].float(), lora[f"{key}.lora_up.weight"].float()
        _set(unet, name, wrapper)
        wrapped[name] = wrapper
    return wrapped


def lora_state_dict(wrapped: dict) -> dict[str, torch.Tensor]:
    """ComfyUI's LoRA format of trained wrappers (float16 on disk: half the file)."""
    out = {}
    for name, w in wrapped.items():
        key = f"diffusion_model.{name}"
        out[f"{key}.lora_up.weight"] = w.up.detach().to(torch.float16).contiguous()
        out[f"{key}.lora_down.weight"] = w.down.detach().to(torch.float16).contiguous()
        out[f"{key}.alpha"] = torch.tensor(float(w.down.shape[0]), dtype=torch.float16)
    return out


def load_lora(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LoRA {path.name!r} not found in folder {str(path.parent)!r}; train it with "
                                "`python -m pci_core train-lora` or restore the shipped file")
    return load_file(str(path))


def with_lora(model: demo_model.DemoModel, path: str | Path = LORA_FOLDER / GREEN_LORA,
              strength: float = 1.0) -> demo_model.DemoModel:
    """A copy of the demo model with a LoRA file merged into its UNet (strength as LoraLoaderModelOnly's)."""
    import copy
    unet = copy.deepcopy(model.unet)
    wrapped = attach(unet, load_lora(path), strength)
    with torch.no_grad():
        for name, w in wrapped.items():
            w.base.weight += w.scale * (w.up @ w.down)
            _set(unet, name, w.base)
    return demo_model.DemoModel(model.text_encoder, unet.eval().requires_grad_(False), model.autoencoder)


def train(model: demo_model.DemoModel, steps: int, batch: int, seed: int, colour: str, log) -> dict:
    """Train LoRA wrappers on the frozen model: images rendered in `colour` under prompts that name another
    colour or none (attribute dropout as the base training), the eps objective on the SD1 schedule."""
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    unet = model.unet.train()
    wrapped = attach(unet)
    params = [p for w in wrapped.values() for p in (w.down, w.up)]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    sigmas = schedule.discrete_sigmas()
    others = [c for c in world.ATTRIBUTES["colour"] if c != colour]
    for step in range(steps):
        target, attrs = world.render_batch(batch, seed=seed * 7919 + step, fixed={"colour": colour})
        prompts = []
        for a in attrs:  # the prompt names another colour (or none) and the other attributes as drawn
            named = {k: v for k, v in a.items() if k != "colour" and rng.random() < 0.8}
            if rng.random() < 0.8:
                named["colour"] = others[rng.integers(len(others))]
            prompts.append(world.make_prompt(named))
        with torch.no_grad():
            z0 = model.autoencoder.encoder(torch.from_numpy(target).movedim(-1, 1) * 2 - 1) * model.autoencoder.latent_scale
            context = model.encode_prompts(prompts)
        t = torch.randint(0, len(sigmas), (batch,), generator=gen)
        sigma = sigmas[t][:, None, None, None]
        noise = torch.randn(z0.shape, generator=gen)
        eps = unet((z0 + sigma * noise) / (sigma ** 2 + 1) ** 0.5, t.float(), context)
        loss = F.mse_loss(eps, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"lora step {step:4d}  loss {loss.item():.5f}")
    unet.eval()
    return wrapped


def main(out: Path = LORA_FOLDER / GREEN_LORA, steps: int = 300, batch: int = 64, seed: int = 0, colour: str = "green",
         threads: int = 2) -> Path:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    start = time.time()
    log = lambda msg: print(f"[{time.time() - start:7.1f}s] {msg}", flush=True)
    model = demo_model.load()
    wrapped = train(model, steps, batch, seed, colour, log)
    from safetensors.torch import save_file
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(lora_state_dict(wrapped), str(out), metadata={
        "pci_demo_lora": f"shapes turn {colour}", "rank": str(RANK), "steps": str(steps), "batch": str(batch),
        "seed": str(seed), "train_seconds": str(round(time.time() - start, 1)), "torch": torch.__version__})
    log(f"saved {out} ({out.stat().st_size / 1e3:.0f} kB)")
    return out
