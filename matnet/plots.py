"""Figures: image grids (torchvision's) and, later, per-layer KL plots."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] for display: probabilities / binary values pass, 8-bit values are scaled."""
    images = images.detach().float().cpu()
    return images / 255.0 if images.max() > 1.0 else images


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, pad: int = 2) -> Path:
    """Write a grid of images [N, C, H, W] as PNG; `nrow` images per row (default: square)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(images.shape[0]))))
    save_image(to_unit(images), path, nrow=nrow, padding=pad, pad_value=1.0)
    return path


def grid(images: torch.Tensor, nrow: int, pad: int = 2) -> torch.Tensor:
    return make_grid(to_unit(images), nrow=nrow, padding=pad, pad_value=1.0)
