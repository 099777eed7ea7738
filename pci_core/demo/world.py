"""The demo world: one coloured shape on a plain background, rendered from attribute words,
and an exact pixel judge that reads every attribute back from an image.

Images are float arrays in [0, 1], shape (H, W, 3) or (B, H, W, 3) (ComfyUI's IMAGE layout).
"""
from __future__ import annotations

import re

import numpy as np

IMAGE_SIZE = 32

# Attribute -> values. Every value word is unique across attributes, so a prompt is a bag of words.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle"),
    "colour": ("red", "green", "blue", "yellow"),
    "size": ("small", "large"),
    "position": ("left", "right", "top", "bottom"),
    "background": ("black", "white", "gray"),
}
COLOURS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.1), "blue": (0.15, 0.25, 0.95),
           "yellow": (0.95, 0.9, 0.1)}
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "gray": (0.5, 0.5, 0.5)}
CENTRES = {"left": (10.0, 16.0), "right": (22.0, 16.0), "top": (16.0, 10.0), "bottom": (16.0, 22.0)}
HALF_SIZE = {"small": 5.0, "large": 8.0}  # half the side of the shape's bounding box, in pixels
JITTER = 1.0  # position jitter in pixels; keeps a large shape off the border
# Words a prompt may use that carry no attribute.
FILLER = ("a", "an", "the", "on", "at", "in", "of", "with", "photo", "picture", "shape",
          "object", "background", "side")

# The demo's base prompt: every demo command, workflow, test and benchmark starts from it.
DEMO_BASE = "a large red circle on the left on a black background"

VALUE_TO_ATTRIBUTE = {v: a for a, values in ATTRIBUTES.items() for v in values}
VOCABULARY: tuple[str, ...] = tuple(sorted(set(FILLER) | set(VALUE_TO_ATTRIBUTE)))


def words_of(prompt: str) -> list[str]:
    """Lower-case words of a prompt; raise ValueError naming any word outside the vocabulary."""
    words = re.findall(r"[a-z]+", prompt.lower())
    unknown = [w for w in words if w not in VOCABULARY]
    if unknown:
        raise ValueError(f"prompt {prompt!r}: unknown word(s) {unknown}; the demo world knows "
                         f"{', '.join(VOCABULARY)}")
    return words


def parse_prompt(prompt: str) -> dict[str, str]:
    """Attribute values named in a prompt, e.g. {'colour': 'red', 'shape': 'circle'}."""
    found: dict[str, str] = {}
    for w in words_of(prompt):
        attribute = VALUE_TO_ATTRIBUTE.get(w)
        if attribute is None:
            continue
        if attribute in found and found[attribute] != w:
            raise ValueError(f"prompt {prompt!r} names two values of {attribute}: "
                             f"{found[attribute]!r} and {w!r}")
        found[attribute] = w
    return found


def make_prompt(attributes: dict[str, str]) -> str:
    """A readable prompt naming exactly the given attributes."""
    parts = ["a"]
    parts += [attributes[a] for a in ("size", "colour") if a in attributes]
    parts.append(attributes.get("shape", "shape"))
    if "position" in attributes:
        parts += ["on the", attributes["position"]]
    if "background" in attributes:
        parts += ["on a", attributes["background"], "background"]
    return " ".join(parts)


def sample_attributes(rng: np.random.Generator, fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Every attribute: the fixed value where given, else uniform at random."""
    fixed = fixed or {}
    return {a: fixed.get(a) or str(rng.choice(values)) for a, values in ATTRIBUTES.items()}


def _coverage(shape: str, cx: float, cy: float, half: float, size: int, supersample: int) -> np.ndarray:
    """Antialiased coverage mask in [0, 1] of a shape, by supersampling pixel centres."""
    n = size * supersample
    coords = (np.arange(n) + 0.5) / supersample
    y, x = np.meshgrid(coords, coords, indexing="ij")
    dx, dy = x - cx, y - cy
    if shape == "circle":
        inside = dx * dx + dy * dy <= half * half
    elif shape == "square":
        inside = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    elif shape == "triangle":  # upright isosceles: apex at top, base at bottom, width = height
        t = (dy + half) / (2 * half)  # 0 at apex, 1 at base
        inside = (t >= 0) & (t <= 1) & (np.abs(dx) <= t * half)
    else:
        raise ValueError(f"shape {shape!r}: valid shapes are {ATTRIBUTES['shape']}")
    return inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def render(attributes: dict[str, str], rng: np.random.Generator | None = None,
           size: int = IMAGE_SIZE, supersample: int = 4) -> np.ndarray:
    """Render one image (H, W, 3) float32 in [0, 1]. rng adds position jitter; None renders centred."""
    for a, values in ATTRIBUTES.items():
        if attributes.get(a) not in values:
            raise ValueError(f"attribute {a}={attributes.get(a)!r}: valid values are {values}")
    cx, cy = CENTRES[attributes["position"]]
    if rng is not None:
        cx, cy = cx + rng.uniform(-JITTER, JITTER), cy + rng.uniform(-JITTER, JITTER)
    scale = size / IMAGE_SIZE
    cover = _coverage(attributes["shape"], cx * scale, cy * scale, HALF_SIZE[attributes["size"]] * scale,
                      size, supersample)[..., None]
    bg = np.array(BACKGROUNDS[attributes["background"]], dtype=np.float32)
    fg = np.array(COLOURS[attributes["colour"]], dtype=np.float32)
    return (bg * (1 - cover) + fg * cover).astype(np.float32)


def render_batch(n: int, seed: int, fixed: dict[str, str] | None = None,
                 size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[dict[str, str]]]:
    """n random images (n, size, size, 3) with their attributes; deterministic in seed."""
    rng = np.random.default_rng(seed)
    attrs = [sample_attributes(rng, fixed) for _ in range(n)]
    return np.stack([render(a, rng, size) for a in attrs]), attrs


# ---------------------------------------------------------------- the pixel judge

def _nearest(colour: np.ndarray, palette: dict[str, tuple[float, float, float]]) -> str:
    names = list(palette)
    dists = [np.abs(colour - np.array(palette[n])).sum() for n in names]
    return names[int(np.argmin(dists))]


def read_attributes(image: np.ndarray) -> dict[str, str | None]:
    """Read every attribute of one image (H, W, 3) in [0, 1]. A value is None when no object is seen."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image of shape {image.shape}: expected (H, W, 3)")
    h, w, _ = image.shape
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    bg = np.median(border, axis=0)
    out: dict[str, str | None] = {a: None for a in ATTRIBUTES}
    out["background"] = _nearest(bg, BACKGROUNDS)
    # Object colour: the pixels farthest from the background; coverage alpha of each pixel is its
    # projection on (object - background), so antialiased edges count by the area they cover.
    dist = np.abs(image - bg).max(axis=-1)
    if dist.max() < 0.25:
        return out
    fg = np.median(image[dist >= 0.8 * dist.max()], axis=0)
    out["colour"] = _nearest(fg, COLOURS)
    direction = fg - bg
    alpha = np.clip((image - bg) @ direction / (direction @ direction), 0.0, 1.0)
    alpha[alpha < 0.2] = 0.0  # generated images carry faint noise that would add up in the extents
    scale = w / IMAGE_SIZE
    bw, bh = alpha.max(axis=0).sum() / scale, alpha.max(axis=1).sum() / scale  # soft extents
    extent = max(bw, bh)
    out["size"] = "large" if extent > HALF_SIZE["small"] + HALF_SIZE["large"] else "small"
    ys, xs = np.nonzero(alpha > 0.5)
    if len(xs) == 0:
        return out
    cx, cy = (xs.min() + xs.max() + 1) / 2 / scale, (ys.min() + ys.max() + 1) / 2 / scale
    # Shape: the candidate whose rendering at this place and size best matches the coverage
    # (cosine similarity); robust to the blurred edges a generated image has.
    flat = alpha.ravel() / (np.linalg.norm(alpha) + 1e-8)
    def match(shape: str) -> float:
        template = _coverage(shape, cx * scale, cy * scale, extent / 2 * scale, h, 2).ravel()
        return float(flat @ template / (np.linalg.norm(template) + 1e-8))
    out["shape"] = max(ATTRIBUTES["shape"], key=match)
    out["position"] = min(CENTRES, key=lambda p: (CENTRES[p][0] - cx) ** 2 + (CENTRES[p][1] - cy) ** 2)
    return out


def judge_batch(images: np.ndarray, concept: dict[str, str]) -> np.ndarray:
    """1.0 where every attribute of the concept is read back from the image, else 0.0."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    return np.array([float(all(read_attributes(im).get(a) == v for a, v in concept.items()))
                     for im in images], dtype=np.float32)
