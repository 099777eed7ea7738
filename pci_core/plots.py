"""Pictures of a CIS run, as float32 RGB arrays (H, W, 3) in [0, 1] (a ComfyUI IMAGE once batched).

cis_plot: CIS(k) of one or several summaries (cis.summarize) with the Wilson 95% band, tau50 and
tau70 with their bootstrap intervals, the two controls, and the noise axis tau on top.
timeline_grid: the paper's figure, final images with seeds as rows and insertion steps as columns.
Both have a size fixed by their inputs only (not by text lengths), so a workflow's previews line up.
"""
from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np

FIGSIZE = (10.0, 5.5)  # inches; at DPI the CIS plot is 1000 x 550 pixels
DPI = 100
COMPACT_LEGEND = 5  # more curves than this: one legend line per curve
LEVEL_MARKERS = {"tau50": "o", "tau70": "D"}
YES, NO = (40, 200, 70), (235, 60, 50)  # score colours in the timeline grid


def _rgb(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0


def _crossing_label(key: str, c: dict) -> str:
    name = f"τ{key[3:]}"
    if c["step"] is None:
        return f"{name} never crosses {c['level']:g}"
    ci = "" if c["step_ci"][0] is None else f" [{c['step_ci'][0]:.1f}, {c['step_ci'][1]:.1f}]"
    return f"{name} = step {c['step']:.1f}{ci}, τ {c['tau']:.3f}"


def _draw_summary(ax, summary: dict, label: str, color, compact: bool) -> None:
    rows = summary["rows"]
    ks = np.array([r["k"] for r in rows], dtype=float)
    curve = np.array([r["cis"] for r in rows])
    crossings = [_crossing_label(k, c) for k, c in summary["crossings"].items()]
    # many curves (a study): one legend line each, tau50 only, so the legend fits the fixed image
    text = ([f"{label}: {crossings[0]}" if crossings else label] if compact
            else [f"{label} (n = {summary['n_seeds']})"] + crossings)
    ax.fill_between(ks, [r["low"] for r in rows], [r["high"] for r in rows], color=color, alpha=0.06 if compact else 0.18, lw=0)
    ax.plot(ks, curve, color=color, lw=2, marker=".", ms=5, label="\n".join(text))
    for key, c in summary["crossings"].items():
        if c["step"] is None:
            continue  # "never crosses" is in the legend, not a marker at a made-up place
        lo, hi = c["step_ci"]
        xerr = None if lo is None else [[c["step"] - lo], [hi - c["step"]]]
        ax.errorbar([c["step"]], [c["level"]], xerr=xerr, color=color, marker=LEVEL_MARKERS.get(key, "o"), ms=8,
                    mfc="white", mew=2, capsize=5, lw=1.5, zorder=5, clip_on=False)
    for value in summary["controls"].values():
        if value is not None:
            ax.axhline(value, color=color, ls=":", lw=1.2, alpha=0.9)


def _noise_axis(ax, summaries: list[dict], labels: list[str]) -> None:
    """Secondary x axis tau (normalised -log sigma^2), interpolated between the measured k."""
    ks = np.array([r["k"] for r in summaries[0]["rows"]], dtype=float)
    taus = np.array([r["tau"] for r in summaries[0]["rows"]])
    if len(ks) < 2:
        return
    top = ax.secondary_xaxis("top", functions=(lambda k: np.interp(k, ks, taus), lambda t: np.interp(t, taus, ks)))
    same = all([r["tau"] for r in s["rows"]] == list(taus) and [r["k"] for r in s["rows"]] == list(ks)
               for s in summaries[1:])
    top.set_xlabel("noise axis τ (normalised −log σ²; 0 = first step)" + ("" if same else f", of {labels[0]}"))


def cis_plot(summaries: list[dict], labels: list[str] | None = None, title: str = "") -> np.ndarray:
    """CIS(k) of each summary (one line each) as an RGB image (550, 1000, 3) float32 in [0, 1]."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator
    import matplotlib

    if not summaries:
        raise ValueError("cis_plot: summaries is empty; give at least one cis.summarize(...) result")
    labels = [s["concept"] for s in summaries] if labels is None else list(labels)
    if len(labels) != len(summaries):
        raise ValueError(f"cis_plot: {len(labels)} labels for {len(summaries)} summaries; give one per summary")
    steps = max(s["steps"] for s in summaries)
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    compact = len(summaries) > COMPACT_LEGEND
    colors = matplotlib.colormaps["tab10" if len(summaries) <= 10 else "tab20"].colors
    for i, (summary, label) in enumerate(zip(summaries, labels)):
        _draw_summary(ax, summary, textwrap.shorten(label, 30 if compact else 45), colors[i % len(colors)], compact)
    for level in (0.5, 0.7):
        ax.axhline(level, color="0.6", lw=0.8, ls="--", zorder=0)
    ax.set(xlim=(0, steps), ylim=(-0.03, 1.03), xlabel="insertion step k (base prompt before k, concept from k on)",
           ylabel="CIS(k): share of seeds showing the concept")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.25)
    _noise_axis(ax, summaries, labels)
    if not title:
        s = summaries[0]
        title = (f"CIS(k) of “{s['concept']}” over {s['n_seeds']} seeds" if len(summaries) == 1
                 else f"CIS(k) of {len(summaries)} concepts")
    ax.set_title(textwrap.fill(textwrap.shorten(title, 160), 80), fontsize=12)
    warnings = [(f"{label}: " if len(summaries) > 1 else "") + w for s, label in zip(summaries, labels)
                for w in s["warnings"]]
    if warnings:  # under the axes, where they cannot hide the curve
        fig.supxlabel("\n".join(textwrap.fill("⚠ " + w, 160) for w in warnings[:3]), fontsize=8, color="tab:red")
    handles = ax.get_legend_handles_labels()[0] + [
        Patch(color="0.5", alpha=0.3, label="Wilson 95% interval per k"),
        Line2D([], [], color="0.3", marker="o", mfc="white", mew=2, ls="", label="τ50 (bootstrap 95% interval)"),
        Line2D([], [], color="0.3", marker="D", mfc="white", mew=2, ls="", label="τ70 (bootstrap 95% interval)"),
        Line2D([], [], color="0.3", ls=":", label="controls: CIS at k=0 (concept only)\nand k=T (base only)")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7 if len(summaries) > 16 else 8, frameon=False,
               ncol=2 if len(summaries) > 30 else 1)
    return _rgb(fig)


def _font(size: int):
    """DejaVu Sans from matplotlib (always installed with it), so text looks the same everywhere."""
    from matplotlib import font_manager
    from PIL import ImageFont
    return ImageFont.truetype(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans")), size)


def _cell_scale(height: int, width: int, columns: int) -> tuple[int, int]:
    """Cell size: small images (the demo's 64 px) enlarged by a whole factor up to 128 px, large ones
    shrunk so a row stays within about 4096 px."""
    side, limit = max(height, width), min(256, max(64, 4096 // columns))
    if side > limit:
        return max(1, round(height * limit / side)), max(1, round(width * limit / side))
    factor = max(1, min(limit, 128) // side)
    return height * factor, width * factor


def timeline_grid(images: np.ndarray, scores: np.ndarray, ks: Sequence[int], seeds: Sequence[int],
                  threshold: float, max_rows: int = 4) -> np.ndarray:
    """Final images (S, K, H, W, 3) in [0, 1] as a grid: rows = the first max_rows seeds, columns = the
    insertion steps ks, each cell framed and its score written small in green (score >= threshold,
    the judge sees the concept) or red; column headers k, row headers seed."""
    from PIL import Image, ImageDraw

    images, scores = np.asarray(images), np.asarray(scores, dtype=np.float64)
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(f"images: shape {images.shape}, need (seeds, steps, height, width, 3)")
    if scores.shape != images.shape[:2] or len(ks) != images.shape[1] or len(seeds) != images.shape[0]:
        raise ValueError(f"scores {scores.shape}, {len(seeds)} seeds and {len(ks)} ks must match images "
                         f"{images.shape[:2]} (seeds, steps)")
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    rows, columns = min(max_rows, images.shape[0]), images.shape[1]
    ch, cw = _cell_scale(images.shape[2], images.shape[3], columns)
    font = _font(max(10, min(16, cw // 8)))
    gap, frame = 6, 2
    text_h = font.getbbox("k=0 seed 9")[3] + 6
    left = max(font.getbbox(f"seed {s}")[2] for s in seeds[:rows]) + 10
    top = 2 * text_h + 4
    legend = f"green: score ≥ {threshold:g}, the judge sees the concept; red: it does not"
    width = max(left + columns * (cw + gap), font.getbbox(legend)[2] + 8)
    canvas = Image.new("RGB", (width, top + rows * (ch + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), legend, fill=(60, 60, 60), font=font)
    for j, k in enumerate(ks):
        draw.text((left + j * (cw + gap) + cw // 2, top - 4), f"k={k}", fill=(30, 30, 30), font=font, anchor="mb")
    pixels = (np.clip(images[:rows], 0, 1) * 255).round().astype(np.uint8)
    for i in range(rows):
        y = top + i * (ch + gap)
        draw.text((left - 8, y + ch // 2), f"seed {seeds[i]}", fill=(30, 30, 30), font=font, anchor="rm")
        for j in range(columns):
            x, score = left + j * (cw + gap), scores[i, j]
            colour = YES if score >= threshold else NO
            cell = Image.fromarray(pixels[i, j])
            if cell.size != (cw, ch):
                enlarge = cw >= cell.size[0]
                cell = cell.resize((cw, ch), Image.NEAREST if enlarge else Image.LANCZOS)
            draw.rectangle([x - frame, y - frame, x + cw + frame - 1, y + ch + frame - 1], fill=colour)
            canvas.paste(cell, (x, y))
            text = f"{score:.2f}"
            box = draw.textbbox((x + 2, y + ch - 2), text, font=font, anchor="lb")
            draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 1, y + ch - 1], fill=(0, 0, 0))
            draw.text((x + 2, y + ch - 2), text, fill=colour, font=font, anchor="lb")
    return np.asarray(canvas, dtype=np.float32) / 255.0


# ---------------------------------------------------------------- edit candidates (BestTimestepEdit; owner: editing)

def edit_candidates_plot(ks: Sequence[int], edit_success: Sequence[float] | None,
                         preservation: Sequence[float] | None, chosen_k: int, steps: int, rule: str = "",
                         success_label: str = "edit success", preservation_label: str = "preservation") -> np.ndarray:
    """Mean edit success and preservation per candidate insertion step, the chosen k marked (a red
    line); a curve that was not measured (None or all NaN) is left out. 500 x 300 pixels."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.0), dpi=DPI)
    ax = fig.add_subplot()
    for values, label, color, marker in ((edit_success, success_label, "tab:blue", "o"),
                                         (preservation, preservation_label, "tab:orange", "s")):
        if values is not None and not np.isnan(np.asarray(values, dtype=float)).all():
            ax.plot(ks, values, marker=marker, ms=3, color=color, label=label)
    ax.axvline(chosen_k, color="tab:red", lw=1.5, label=f"chosen k = {chosen_k}" + (f" ({rule})" if rule else ""))
    ax.set(xlim=(-0.5, steps + 0.5), ylim=(-0.03, 1.03), xlabel="insertion step k of the edit prompt",
           ylabel="mean over probe seeds")
    ax.set_title("early k regenerates the image, late k misses the edit", fontsize=8)
    ax.legend(fontsize=7, loc="center left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _rgb(fig)


TIMELINE_COLUMNS = 21  # insertion steps a timeline grid shows: evenly spaced, k = 0 and k = T always
CLIP_STRIP = 3         # frames of a clip shown side by side in its cell: first, middle, last


def evenly(ks: Sequence[int], n: int) -> list[int]:
    """At most n of the sorted ks, evenly spaced, the first and the last always."""
    ks = list(ks)
    if len(ks) <= n:
        return ks
    return sorted({ks[round(i * (len(ks) - 1) / (n - 1))] for i in range(n)})


def cell_picture(picture) -> np.ndarray:
    """A timeline cell of one sweep branch: its image (H, W, 3), or for a clip (F, H, W, 3) a strip of its
    first, middle and last frames side by side."""
    picture = np.asarray(picture, dtype=np.float32)
    if picture.ndim == 4:
        picture = np.concatenate([picture[i] for i in sorted({0, len(picture) // 2, len(picture) - 1})][:CLIP_STRIP],
                                 axis=1)
    return picture


class Timeline:
    """The timeline grid of a sweep, collected while it runs: the cells of the first seeds at up to
    TIMELINE_COLUMNS of its insertion steps (keep(seed, k, picture) drops every other picture), so memory
    holds rows x columns cells whatever the seeds and steps."""

    def __init__(self, seeds: Sequence[int], ks: Sequence[int], columns: int = TIMELINE_COLUMNS, save_clip=None):
        """save_clip(seed, k, clip): where a cell's whole clip goes (a file), as it passes by."""
        self.seeds, self.ks, self.cells, self.save_clip = list(seeds), evenly(ks, columns), {}, save_clip

    def keep(self, seed: int, k: int, picture) -> None:
        if seed in self.seeds and k in self.ks:
            self.cells[(seed, k)] = cell_picture(picture)
            if self.save_clip is not None and np.ndim(picture) == 4:
                self.save_clip(seed, k, np.asarray(picture))

    def missing(self) -> list[int]:
        return [s for s in self.seeds if any((s, k) not in self.cells for k in self.ks)]

    def draw(self, result, threshold: float) -> np.ndarray:
        """timeline_grid of the kept cells with their scores from the run's result."""
        images = np.stack([np.stack([self.cells[(s, k)] for k in self.ks]) for s in self.seeds])
        scores = result.restrict(self.seeds).scores[:, [result.ks.index(k) for k in self.ks]]
        return timeline_grid(images, scores, self.ks, self.seeds, threshold, max_rows=len(self.seeds))
