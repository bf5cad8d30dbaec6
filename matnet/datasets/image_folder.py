"""An image folder: the photographs (JPEG, PNG, ...) anywhere under data.image_folder (CelebA, LSUN,
your own), centre-cropped to a square and resized to 64x64 RGB; sorted by path, the last 10% are the
test split."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from . import DataFileError, Dataset, DatasetMissingError, Raw, register

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
_SHAPE = (3, 64, 64)


def image_files(folder: str | Path) -> list[Path]:
    """The image files anywhere under `folder`, sorted by path."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetMissingError(f"image folder {folder}: no such folder; point data.image_folder (or --images) "
                                  f"at the folder that holds the photographs")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DatasetMissingError(f"image folder {folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in it "
                                  f"or below it")
    return files


def read_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One photograph as uint8 [channels, size, size]: the centred square crop, resized (bicubic)."""
    from PIL import Image, UnidentifiedImageError

    mode = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as im:
            im.draft(mode, (2 * size, 2 * size))  # JPEG: decode at a reduced scale, far faster
            im = im.convert(mode)
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
            array = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataFileError(f"{path}: not a readable image ({type(e).__name__}: {e}); remove or replace it") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def read_image_folder(folder: str | Path, size: int = 64, channels: int = 3,
                      limit: int = 0) -> tuple[torch.Tensor, list[Path]]:
    """The photographs under `folder` (the first `limit` by path; 0: all) as uint8 [N, C, size, size],
    decoded by a pool of threads (PIL releases the GIL while it decodes)."""
    from concurrent.futures import ThreadPoolExecutor

    files = image_files(folder)
    if limit > 0:
        files = files[:limit]
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(lambda p: read_image(p, size, channels), files))
    return torch.from_numpy(np.stack(arrays)), files


def _load_image_folder(root: Path) -> Raw:
    c, size, _ = _SHAPE
    images, files = read_image_folder(root, size, c)
    if len(files) < 2:
        raise DatasetMissingError(f"image folder {root}: {len(files)} image; a training and a test split need at least 2")
    n_test = max(1, len(files) // 10)
    return Raw(images[:-n_test], images[-n_test:], str(root), str(root))


def _count_train_file(root: Path) -> int:
    n_files = len(image_files(root))
    return n_files - max(1, n_files // 10)  # the last tenth is the test split (_load_image_folder)


register(Dataset("image-folder", _SHAPE, _load_image_folder, count_train_file=_count_train_file, own_folder=True))
