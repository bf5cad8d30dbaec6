"""Masks for imputation: which pixels are known (x_k) and which the model must fill in (x_u).

A mask is a bool tensor [N, 1, H, W], True where the pixel is KNOWN; one mask serves every colour
channel. The kinds, from the paper's experiments and the author's code:

  quadrants   MNIST's task: of the four (H/2)x(W/2) quadrants, 1 to 3 are visible, how many and which
              drawn per example (or a fixed number of visible quadrants).
  occluders   N squares of S x S pixels hidden, each placed uniformly at random where it fits in the
              image (they may overlap); the paper's faces: three 20x20 on 64x64.
  centre      one centred square hidden (half the image side unless told otherwise).
  FILE        an image file (PNG, ...) read as a picture of the mask, the same for every example, drawn at
              the images' size (or a whole multiple of it, scaled down; any other size is refused):
              WHITE (bright) pixels are the unknown ones to impute, black ones are known.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError

from .sections import DataConfig

KINDS: tuple[str, ...] = ("quadrants", "occluders", "centre")


class MaskError(ConfigError):
    """A mask that cannot be used: an unknown name, an unreadable file, a file hiding no pixel. A
    ConfigError, so every command (and a search space check) shows it as one line."""


def quadrant_masks(n: int, size: int, visible: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Known = `visible` of the four quadrants (0: 1, 2 or 3, drawn per example), which ones drawn
    uniformly per example."""
    if visible not in (0, 1, 2, 3):
        raise ConfigError(f"visible quadrants = {visible}: use 1, 2 or 3 (0: drawn per example)")
    counts = (torch.randint(1, 4, (n,), generator=generator) if visible == 0
              else torch.full((n,), visible, dtype=torch.long))
    # A random order of the four quadrants per example; the first `count` of it are shown.
    rank = torch.rand(n, 4, generator=generator).argsort(1).argsort(1)       # rank of each quadrant
    shown = rank < counts[:, None]                                            # [n, 4]: TL, TR, BL, BR
    half = size // 2
    rows = (torch.arange(size) >= half).long()                                # 0: top half, 1: bottom
    quadrant = rows[:, None] * 2 + rows[None, :]                              # [H, W] quadrant index
    return shown[:, quadrant].unsqueeze(1)


def occluder_boxes(n: int, size: int, count: int, side: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Top-left corners [n, count, 2] (row, column) of `count` squares of `side` pixels, each drawn
    uniformly among the positions where the whole square fits in the image."""
    if count < 1 or not 1 <= side <= size:
        raise ConfigError(f"occluders: need at least one ({count} given) of a side between 1 and the image "
                          f"size {size} ({side} given)")
    return torch.randint(0, size - side + 1, (n, count, 2), generator=generator)


def boxes_to_mask(boxes: torch.Tensor, size: int, side: int) -> torch.Tensor:
    """Known-pixel masks [n, 1, size, size] with the squares of `boxes` hidden."""
    ar = torch.arange(size)
    in_rows = (ar >= boxes[..., 0:1]) & (ar < boxes[..., 0:1] + side)       # [n, count, H]
    in_cols = (ar >= boxes[..., 1:2]) & (ar < boxes[..., 1:2] + side)       # [n, count, W]
    hidden = (in_rows[..., :, None] & in_cols[..., None, :]).any(1)          # [n, H, W]
    return ~hidden.unsqueeze(1)


def occluder_masks(n: int, size: int, count: int = 3, side: int = 20,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    return boxes_to_mask(occluder_boxes(n, size, count, side, generator), size, side)


def centre_mask(n: int, size: int, side: int = 0) -> torch.Tensor:
    """The centred square of `side` pixels (0: half the image side) hidden."""
    side = side or size // 2
    if not 1 <= side <= size:
        raise ConfigError(f"centre square of side {side}: must be between 1 and the image size {size}")
    start = (size - side) // 2
    known = torch.ones(n, 1, size, size, dtype=torch.bool)
    known[:, :, start:start + side, start:start + side] = False
    return known


def read_mask_image(path: str | Path, size: int) -> tuple[torch.Tensor, int]:
    """The mask of an image file, and the side it was drawn at. The file must be size x size, or a square
    whole multiple of it (a mask drawn at a higher resolution), which is scaled down by taking every
    k-th pixel; any other size is refused rather than squashed into a different mask."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            gray = im.convert("L")
    except FileNotFoundError:
        raise MaskError(f"mask file {path}: not found; give quadrants, occluders, centre or an image file") from None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise MaskError(f"mask file {path}: not a readable image ({type(e).__name__}); save it as PNG, "
                        f"white where pixels are to be imputed") from None
    if (w, h) != (size, size) and not (w == h and w % size == 0):
        raise MaskError(f"mask file {path}: {w}x{h} pixels, but the images are {size}x{size}; draw the mask "
                        f"at {size}x{size} (or at a whole multiple such as {2 * size}x{2 * size})")
    gray = gray.resize((size, size), Image.Resampling.NEAREST)
    hidden = torch.from_numpy(np.asarray(gray) >= 128)
    if not hidden.any():
        raise MaskError(f"mask file {path}: no white pixel, so nothing to impute (white = unknown, black = known)")
    if hidden.all():
        raise MaskError(f"mask file {path}: all white, so no pixel is known (white = unknown, black = known)")
    return ~hidden.view(1, 1, size, size), w


@dataclass
class MaskMaker:
    """Draws masks of one kind for images of side `size`: maker(n, generator) -> bool [n, 1, H, W]."""

    kind: str                   # quadrants | occluders | centre | file
    size: int
    visible: int = 0            # quadrants: visible ones (0: 1-3 per example)
    count: int = 3              # occluders: how many
    side: int = 20              # occluders: their side; centre: the square's side (0: half the image)
    path: str = ""              # file: the mask image
    _fixed: torch.Tensor | None = None
    _drawn_at: int = 0          # file: the side of the mask image (a multiple of size when scaled down)

    def __post_init__(self) -> None:
        if self.kind == "file":
            self._fixed, self._drawn_at = read_mask_image(self.path, self.size)
        elif self.kind == "occluders":
            occluder_boxes(0, self.size, self.count, self.side)  # checks the sizes now, not at first use
        elif self.kind == "centre":
            centre_mask(0, self.size, self.side)
        elif self.kind == "quadrants":
            quadrant_masks(0, self.size, self.visible)
        else:
            raise ConfigError(f"mask kind {self.kind!r}: use {', '.join(KINDS)} or an image file")

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.kind == "quadrants":
            return quadrant_masks(n, self.size, self.visible, generator)
        if self.kind == "occluders":
            return occluder_masks(n, self.size, self.count, self.side, generator)
        if self.kind == "centre":
            return centre_mask(n, self.size, self.side)
        return self._fixed.expand(n, -1, -1, -1).clone()

    def describe(self) -> str:
        if self.kind == "quadrants":
            return f"quadrants: {self.visible or '1-3'} of 4 visible"
        if self.kind == "occluders":
            return f"occluders: {self.count} of {self.side}x{self.side}"
        if self.kind == "centre":
            side = self.side or self.size // 2
            return f"centre: {side}x{side} hidden"
        if self._drawn_at != self.size:
            return f"file: {self.path} (drawn at {self._drawn_at}x{self._drawn_at}, scaled down to {self.size}x{self.size})"
        return f"file: {self.path}"


def mask_maker(data: DataConfig, image_shape: tuple[int, int, int], mask: str | None = None) -> MaskMaker:
    """The mask maker that a data config (data.mask and its settings) asks for; `mask` overrides
    data.mask. A value that is not a kind is read as the path of a mask image."""
    name = data.mask if mask is None else mask
    size = image_shape[1]
    if name in KINDS:
        side = data.occluder_size if name == "occluders" else data.centre_size
        return MaskMaker(name, size, visible=data.visible_quadrants, count=data.occluders, side=side)
    if not Path(name).expanduser().is_file():
        raise MaskError(f"mask {name!r}: not one of {', '.join(KINDS)}, and no such file")
    return MaskMaker("file", size, path=str(Path(name).expanduser()))


def fixed_masks(maker: MaskMaker, n: int, seed: int) -> torch.Tensor:
    """n masks drawn with their own seeded generator: the same masks for every evaluation and every
    model that is evaluated with the same seed, whatever the batch size."""
    return maker(n, torch.Generator().manual_seed(seed))
