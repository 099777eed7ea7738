"""The demo model: a word tokenizer, a text encoder, a cross-attention UNet (eps prediction on the
SD1 discrete schedule) and a small autoencoder between 32x32 RGB and 4x8x8 latents.

The UNet has the call signature of ComfyUI's UNetModel (x, timesteps, context, **kwargs), and its
constructor takes ComfyUI's (device, dtype, operations) keywords, so `comfy.model_base.BaseModel`
can build it directly; nothing here imports comfy.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import world

IMAGE_SIZE = 64  # pixels per side of the model's images (the world's 32 units, 2 px each)
MAX_TOKENS = 16
MIN_ROWS = 16  # rows the UNet's time MLP always runs on (see DemoUNet.forward)
PAD = 0
TEXT_CONFIG = {"vocab_size": len(world.VOCABULARY) + 1, "width": 64, "layers": 2, "heads": 4}
UNET_CONFIG = {"in_channels": 4, "model_channels": 64, "channel_mult": [1, 2], "context_dim": 64,
               "num_heads": 4}
AE_CONFIG = {"latent_channels": 4, "channels": 32}
WEIGHTS_FILE = "demo_model.safetensors"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / WEIGHTS_FILE


# ---------------------------------------------------------------- text

def tokenize(prompt: str) -> list[int]:
    """Word ids of a prompt (1-based; 0 is padding), padded to MAX_TOKENS. Order carries no meaning."""
    words = world.words_of(prompt)
    if len(words) > MAX_TOKENS:
        raise ValueError(f"prompt {prompt!r} has {len(words)} words; at most {MAX_TOKENS} fit")
    ids = [world.VOCABULARY.index(w) + 1 for w in words]
    return ids + [PAD] * (MAX_TOKENS - len(ids))


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, width: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.norm1, self.qkv, self.proj1 = nn.LayerNorm(width), nn.Linear(width, 3 * width), nn.Linear(width, width)
        if context_dim is not None:
            self.norm2, self.q = nn.LayerNorm(width), nn.Linear(width, width)
            self.kv, self.proj2 = nn.Linear(context_dim, 2 * width), nn.Linear(width, width)
        self.norm3 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def _attend(self, q, k, v):
        b, n, c = q.shape
        split = lambda t: t.reshape(b, -1, self.heads, c // self.heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        return out.transpose(1, 2).reshape(b, n, c)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.proj1(self._attend(*self.qkv(self.norm1(x)).chunk(3, dim=-1)))
        if context is not None:
            x = x + self.proj2(self._attend(self.q(self.norm2(x)), *self.kv(context).chunk(2, dim=-1)))
        return x + self.mlp(self.norm3(x))


class TextEncoder(nn.Module):
    """Word embeddings and self-attention without positions: a prompt is a bag of words."""

    def __init__(self, vocab_size: int, width: int, layers: int, heads: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


# ---------------------------------------------------------------- denoiser

def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int | None = None):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout) if temb else None
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.temb is not None:
            h = h + self.temb(F.silu(emb))[:h.shape[0], :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, context_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.block = Block(channels, heads, context_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        return x + self.block(tokens, context).transpose(1, 2).reshape(b, c, h, w)


class DemoUNet(nn.Module):
    """Two-level UNet with cross-attention at every level; predicts the noise (eps)."""

    def __init__(self, in_channels=4, model_channels=64, channel_mult=(1, 2), context_dim=64, num_heads=4,
                 dtype=None, device=None, operations=None, **unused):
        super().__init__()
        self.dtype = dtype or torch.float32  # ComfyUI's BaseModel.get_dtype reads this
        c0, c1 = (model_channels * m for m in channel_mult)
        temb = 4 * model_channels
        self.model_channels = model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)
        self.down0, self.attn_down0 = ResBlock(c0, c0, temb), SpatialTransformer(c0, num_heads, context_dim)
        self.downsample = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.down1, self.attn_down1 = ResBlock(c0, c1, temb), SpatialTransformer(c1, num_heads, context_dim)
        self.mid1, self.attn_mid = ResBlock(c1, c1, temb), SpatialTransformer(c1, num_heads, context_dim)
        self.mid2 = ResBlock(c1, c1, temb)
        self.up1, self.attn_up1 = ResBlock(2 * c1, c1, temb), SpatialTransformer(c1, num_heads, context_dim)
        self.upsample = nn.Conv2d(c1, c1, 3, padding=1)
        self.up0, self.attn_up0 = ResBlock(c1 + c0, c0, temb), SpatialTransformer(c0, num_heads, context_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, c0), nn.SiLU(), nn.Conv2d(c0, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    def forward(self, x, timesteps, context, **kwargs):
        # CPU kernels pick their code path by batch size (2-D GEMMs below ~12 rows, convs at 1 row),
        # which changes a row's last bits. Running the small time MLP on >= MIN_ROWS rows and convs on
        # >= 2 makes each row's result independent of its batch, so a branch of a batched sweep is
        # bit-identical to its own run; the padding costs nothing measurable.
        n = x.shape[0]
        if n == 1:
            return self.forward(torch.cat([x, x]), timesteps.reshape(-1).expand(1).repeat(2),
                                torch.cat([context, context]), **kwargs)[:1]
        t = timesteps.reshape(-1).expand(n)
        t = torch.cat([t, t[:1].expand(max(0, MIN_ROWS - n))])
        emb = self.time_embed(timestep_embedding(t, self.model_channels).to(x.dtype))
        h0 = self.attn_down0(self.down0(self.conv_in(x), emb), context)
        h1 = self.attn_down1(self.down1(self.downsample(h0), emb), context)
        h = self.mid2(self.attn_mid(self.mid1(h1, emb), context), emb)
        h = self.attn_up1(self.up1(torch.cat([h, h1], 1), emb), context)
        h = self.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.attn_up0(self.up0(torch.cat([h, h0], 1), emb), context)
        return self.out(h)


# ---------------------------------------------------------------- autoencoder

class AutoEncoder(nn.Module):
    """RGB in [-1, 1] (B, 3, 64, 64) <-> latents (B, 4, 8, 8) of about unit variance.

    The learned part works at 32x32 (the world's detail); a fixed 2x area-downsample in front of
    the encoder and a 2x bilinear upsample after the decoder give the 8x ratio of SD-family VAEs,
    so ComfyUI's EmptyLatentImage (which assumes 8x) makes latents of the right size."""

    downscale = 8

    def __init__(self, latent_channels: int = 4, channels: int = 32):
        super().__init__()
        c, c2 = channels, 2 * channels
        self.latent_channels = latent_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), ResBlock(c, c), nn.Conv2d(c, c2, 3, stride=2, padding=1),
            ResBlock(c2, c2), nn.Conv2d(c2, c2, 3, stride=2, padding=1), ResBlock(c2, c2),
            nn.GroupNorm(8, c2), nn.SiLU(), nn.Conv2d(c2, latent_channels, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, c2, 3, padding=1), ResBlock(c2, c2), ResBlock(c2, c2),
            nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(c2, c2, 3, padding=1), ResBlock(c2, c2),
            nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(c2, c, 3, padding=1), ResBlock(c, c),
            nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))
        # Latents are scaled to about unit variance after training; the scale ships in the weights.
        self.register_buffer("latent_scale", torch.ones(()))

    def encode(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.encoder(F.avg_pool2d(x, 2)) * self.latent_scale

    def decode(self, z: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return F.interpolate(self.decoder(z / self.latent_scale), scale_factor=2.0, mode="bilinear",
                             align_corners=False)


# ---------------------------------------------------------------- the whole model

@dataclass
class DemoModel:
    text_encoder: TextEncoder
    unet: DemoUNet
    autoencoder: AutoEncoder

    def modules(self) -> dict[str, nn.Module]:
        return {"text_encoder": self.text_encoder, "unet": self.unet, "autoencoder": self.autoencoder}

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text context (B, MAX_TOKENS, width) for prompts."""
        ids = torch.tensor([tokenize(p) for p in prompts], dtype=torch.long)
        return self.text_encoder(ids)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images (B, 64, 64, 3) in [0, 1], ComfyUI's IMAGE layout."""
        return ((self.autoencoder.decode(latents) + 1) / 2).clamp(0, 1).movedim(1, -1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, H, W, 3) in [0, 1] -> latents."""
        return self.autoencoder.encode(images.movedim(-1, 1) * 2 - 1)


@torch.no_grad()
def latent_rgb_factors(model: DemoModel, samples: int = 256) -> tuple[list[list[float]], list[float]]:
    """Least-squares linear map latent (4) -> RGB in [-1, 1] (3) per latent pixel, fitted on rendered
    images: what ComfyUI's Latent2RGB previewer needs to show the denoising live."""
    images, _ = world.render_batch(samples, seed=99, size=IMAGE_SIZE)
    x = torch.from_numpy(images).movedim(-1, 1) * 2 - 1
    z = model.autoencoder.encode(x)
    target = F.avg_pool2d(x, model.autoencoder.downscale)
    a = torch.cat([z.movedim(1, -1).reshape(-1, z.shape[1]), torch.ones(z[:, :1].numel(), 1)], dim=1)
    solution = torch.linalg.lstsq(a, target.movedim(1, -1).reshape(-1, 3)).solution
    return solution[:-1].tolist(), solution[-1].tolist()


def build_model() -> DemoModel:
    return DemoModel(TextEncoder(**TEXT_CONFIG), DemoUNet(**UNET_CONFIG), AutoEncoder(**AE_CONFIG))


def state_dict(model: DemoModel) -> dict[str, torch.Tensor]:
    """Every weight under its module's prefix, stored as float16 (half the file; loading casts back)."""
    return {f"{name}.{k}": v.detach().to(torch.float16).contiguous() for name, m in model.modules().items()
            for k, v in m.state_dict().items()}


def save(model: DemoModel, path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file
    meta = {"configs": json.dumps({"text": TEXT_CONFIG, "unet": UNET_CONFIG, "ae": AE_CONFIG})}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state_dict(model), str(path), metadata=meta)


def load(path: str | Path | None = None) -> DemoModel:
    """Load the demo model from a safetensors file (default: the shipped weights)."""
    from safetensors.torch import load_file
    path = Path(path) if path else DEFAULT_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"demo model weights {path.name!r} not found in folder {str(path.parent)!r}; "
                                f"train them with `python -m pci_core train` or restore the shipped file")
    from safetensors import SafetensorError
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"demo model weights {str(path)!r} are not a safetensors file ({e})") from None
    model = build_model()
    for name, module in model.modules().items():
        prefix = name + "."
        try:
            module.load_state_dict({k[len(prefix):]: v.float() for k, v in weights.items() if k.startswith(prefix)})
        except RuntimeError as e:
            raise ValueError(f"demo model weights {str(path)!r} do not fit the demo model's {name} "
                             f"({str(e).splitlines()[0]})") from None
        module.eval().requires_grad_(False)
    return model


def count_parameters(model: DemoModel) -> dict[str, int]:
    return {name: sum(p.numel() for p in m.parameters()) for name, m in model.modules().items()}
