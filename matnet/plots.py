"""Figures: image grids (torchvision's), the by-component grid of Figure 3, and the per-layer KL over
training as a stacked area plot grouped by meta module (Figure 4)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torchvision.utils import make_grid, save_image

from . import metricslog
from .outputs import image_format, replacing


def to_unit(images: torch.Tensor, eight_bit: bool | None = None) -> torch.Tensor:
    """Images in [0, 1] for display. `eight_bit`: values are 0..255 (True) or already in [0, 1]
    (False); None guesses from the values (8-bit when any exceeds 1)."""
    images = images.detach().float().cpu()
    if eight_bit is None:
        eight_bit = bool(images.max() > 1.0)
    return images / 255.0 if eight_bit else images


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, pad: int = 2) -> Path:
    """Write a grid of images [N, C, H, W] as PNG; `nrow` images per row (default: square)."""
    path = Path(path)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(images.shape[0]))))
    fmt = image_format(path)
    with replacing(path) as tmp:  # a crash leaves the old image or the new one (outputs.py)
        save_image(to_unit(images), tmp, nrow=nrow, padding=pad, pad_value=1.0, format=fmt)
    return path


def grid(images: torch.Tensor, nrow: int, pad: int = 2) -> torch.Tensor:
    return make_grid(to_unit(images), nrow=nrow, padding=pad, pad_value=1.0)


def save_group_grid(groups: Sequence[torch.Tensor], path: str | Path, eight_bit: bool, gap: int = 6) -> Path:
    """Column groups side by side (Figure 3): each group is [rows, columns, C, H, W]; groups are
    separated by a gray band wider than the white padding inside a group."""
    path = Path(path)
    fmt = image_format(path)
    tiles = [make_grid(to_unit(g.flatten(0, 1), eight_bit), nrow=g.shape[1], padding=2, pad_value=1.0)
             for g in groups]
    spacer = torch.full((3, tiles[0].shape[1], gap), 0.5)
    parts = [t for tile in tiles for t in (tile, spacer)][:-1]
    with replacing(path) as tmp:
        save_image(torch.cat(parts, 2), tmp, format=fmt)
    return path


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The lines of a metrics.jsonl, as dicts (a torn line skipped: metricslog.py)."""
    return metricslog.read_metrics(path)


# One colour family per meta module (z_0 in gray), one shade per module within it.
_FAMILIES = ("Blues", "Oranges", "Greens", "Purples", "Reds", "YlOrBr", "PuRd", "BuGn")


def plot_kl_per_layer(history: Sequence[dict[str, Any]], layer_meta: Sequence[int], path: str | Path,
                      meta_labels: dict[int, str] | None = None, title: str | None = None) -> Path:
    """Figure 4: the validation KL of every latent layer (nats per image) over training, stacked, z_0
    at the bottom and then coarse to fine. Layers of one meta module share a colour family; light
    lines separate modules and dark lines meta modules. `history` holds dicts with "step" and
    "val_kl_per_layer" (metrics.jsonl lines); `layer_meta` gives each layer's meta module (-1: z_0)."""
    from matplotlib import colormaps

    rows = [h for h in history if "val_kl_per_layer" in h]
    if not rows:
        raise ValueError("no metrics with val_kl_per_layer to plot")
    steps = np.array([h["step"] for h in rows], dtype=float)
    kl = np.array([h["val_kl_per_layer"] for h in rows], dtype=float)       # [T, L]
    if kl.shape[1] != len(layer_meta):
        raise ValueError(f"history has {kl.shape[1]} layers but layer_meta {len(layer_meta)}")
    labels = meta_labels or {}
    metas = list(dict.fromkeys(layer_meta))
    colours = []
    for layer, meta in enumerate(layer_meta):
        members = [l for l, m in enumerate(layer_meta) if m == meta]
        shade = 0.65 if len(members) == 1 else 0.35 + 0.5 * members.index(layer) / (len(members) - 1)
        family = "Greys" if meta < 0 else _FAMILIES[metas.index(meta) % len(_FAMILIES)]
        colours.append(colormaps[family](shade))

    fig = Figure(figsize=(7.5, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(steps) == 1:  # one evaluation: a single stacked bar
        ax.bar(np.zeros(len(layer_meta)), kl[0], bottom=np.r_[0.0, kl[0].cumsum()[:-1]],
               color=colours, width=0.6, edgecolor="white", linewidth=0.6)
        ax.set_xticks([0], [f"step {int(steps[0])}"])
    else:
        ax.stackplot(steps, kl.T, colors=colours, linewidth=0)
        top = kl.cumsum(1)
        for layer in range(len(layer_meta)):
            last_of_meta = layer + 1 == len(layer_meta) or layer_meta[layer + 1] != layer_meta[layer]
            ax.plot(steps, top[:, layer], color="0.15" if last_of_meta else "white",
                    linewidth=1.1 if last_of_meta else 0.5)
        ax.set_xlim(steps[0], steps[-1])
        ax.set_xlabel("training step")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("KL(q || p) per layer, nats per image")
    ax.set_title(title or "Per-layer KL over training, grouped by meta module")
    handles = [Patch(color=colours[_middle(layer_meta, m)],
                     label=f"{labels.get(m, 'z0' if m < 0 else f'meta {m}')} "
                           f"({layer_meta.count(m)} layer{'s' * (layer_meta.count(m) > 1)})")
               for m in reversed(metas)]  # the legend reads top to bottom like the stack
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save_laid_out(fig, path)


def _middle(layer_meta: Sequence[int], meta: int) -> int:
    """The middle layer of a meta module: its shade stands for the module's colour family."""
    members = [l for l, m in enumerate(layer_meta) if m == meta]
    return members[len(members) // 2]


def plot_kl_bars(kl: Sequence[float], names: Sequence[str], path: str | Path, title: str) -> Path:
    """The KL of every latent layer at one point of training (nats per image), one bar per layer."""
    fig = Figure(figsize=(max(4.0, 0.45 * len(kl) + 1.5), 3.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(range(len(kl)), kl, color="#4477aa")
    ax.set_xticks(range(len(kl)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("KL (nats / image)")
    ax.set_title(title, fontsize=9)
    return _save_laid_out(fig, path)


def _save_laid_out(fig: Figure, path: str | Path) -> Path:
    """Lay the figure out tightly once and write it as PNG, whole or not at all. tight_layout leaves a
    placeholder layout engine behind, and savefig then draws the whole figure one extra time (without
    rendering) before drawing it for real: dropped here, the same pixels come out a fifth faster (a
    search draws these for every trial: search/tracking/trial_runs.py)."""
    fig.tight_layout()
    fig.set_layout_engine(None)
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp)
    return path
