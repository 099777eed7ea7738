"""Train the demo model from scratch on the demo world (CPU, deterministic in the seed).

Stage 1 trains the autoencoder on rendered images; stage 2 encodes a fixed data set to latents
and trains the text encoder and UNet with the eps objective on the SD1 discrete schedule, with
per-attribute prompt dropout so that partial and empty prompts (CFG's uncond) are in-distribution.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import schedule
from . import demo_model, world


def _prompts(attrs: list[dict[str, str]], rng: np.random.Generator, keep: float, empty: float) -> list[str]:
    out = []
    for a in attrs:
        if rng.random() < empty:
            out.append("")
        else:
            out.append(world.make_prompt({k: v for k, v in a.items() if rng.random() < keep}))
    return out


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


def train_autoencoder(ae: demo_model.AutoEncoder, steps: int, batch: int, seed: int, log) -> None:
    opt = torch.optim.AdamW(ae.parameters(), lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        images, _ = world.render_batch(batch, seed=seed * 100003 + step)
        x = torch.from_numpy(images).movedim(-1, 1) * 2 - 1
        z = ae.encoder(x)
        # Noise on the latent makes the decoder forgiving of a diffusion model's small errors.
        recon = ae.decoder(z + 0.1 * torch.randn(z.shape, generator=gen))
        loss = F.mse_loss(recon, x) + 1e-3 * z.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"autoencoder step {step:5d}  loss {loss.item():.5f}")
    with torch.no_grad():
        images, _ = world.render_batch(2048, seed=seed + 1)
        z = ae.encoder(torch.from_numpy(images).movedim(-1, 1) * 2 - 1)
        ae.latent_scale.fill_(1.0 / z.std().item())
        recon = ((ae.decoder(z[:512]) + 1) / 2).clamp(0, 1).movedim(1, -1).numpy()
    read = [world.read_attributes(r) for r in recon]
    _, attrs = world.render_batch(2048, seed=seed + 1)
    log("autoencoder round trip, pixel judge: " + ", ".join(
        f"{a} {np.mean([r[a] == t[a] for r, t in zip(read, attrs)]):.3f}" for a in world.ATTRIBUTES))


def train_diffusion(model: demo_model.DemoModel, steps: int, batch: int, dataset: int, seed: int, log) -> demo_model.DemoModel:
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    # Rendering at 32 with 4x supersampling equals rendering at 64 with 2x and area-pooling, which is
    # what AutoEncoder.encode does first; so the 32x32 images go straight to the learned encoder.
    images, attrs = world.render_batch(dataset, seed=seed + 2)
    ae = model.autoencoder
    with torch.no_grad():
        latents = torch.cat([ae.encoder(torch.from_numpy(images[i:i + 1024]).movedim(-1, 1) * 2 - 1)
                             for i in range(0, dataset, 1024)]) * ae.latent_scale
    sigmas = schedule.discrete_sigmas()
    params = list(model.text_encoder.parameters()) + list(model.unet.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    ema_text, ema_unet = copy.deepcopy(model.text_encoder), copy.deepcopy(model.unet)
    for step in range(steps):
        idx = rng.integers(0, dataset, batch)
        z0 = latents[idx]
        ids = torch.tensor([demo_model.tokenize(p) for p in _prompts([attrs[i] for i in idx], rng, 0.7, 0.1)])
        t = torch.randint(0, len(sigmas), (batch,), generator=gen)
        sigma = sigmas[t][:, None, None, None]
        noise = torch.randn(z0.shape, generator=gen)
        x_in = (z0 + sigma * noise) / (sigma ** 2 + 1) ** 0.5
        eps = model.unet(x_in, t.float(), model.text_encoder(ids))
        loss = F.mse_loss(eps, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(0.999, (1 + step) / (10 + step))
        _ema_update(ema_text, model.text_encoder, decay)
        _ema_update(ema_unet, model.unet, decay)
        if step % 200 == 0 or step == steps - 1:
            log(f"diffusion step {step:5d}  loss {loss.item():.5f}")
    return demo_model.DemoModel(ema_text, ema_unet, model.autoencoder)


def main(out: Path = demo_model.DEFAULT_WEIGHTS, ae_steps: int = 800, steps: int = 1800, batch: int = 128,
         dataset: int = 60000, seed: int = 0, threads: int = 2) -> Path:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    start = time.time()
    log = lambda msg: print(f"[{time.time() - start:7.1f}s] {msg}", flush=True)
    model = demo_model.build_model()
    log(f"parameters: {demo_model.count_parameters(model)}")
    model.autoencoder.train()
    train_autoencoder(model.autoencoder, ae_steps, 64, seed, log)
    model.autoencoder.eval().requires_grad_(False)
    ae_time = time.time() - start
    model = train_diffusion(model, steps, batch, dataset, seed, log)
    total = time.time() - start
    demo_model.save(model, out, {"seed": seed, "ae_steps": ae_steps, "steps": steps, "batch": batch,
                                 "train_seconds": round(total, 1), "ae_seconds": round(ae_time, 1),
                                 "torch": torch.__version__})
    log(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB) after {total / 60:.1f} min")
    return out
