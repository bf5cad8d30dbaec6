"""The fixed binarization of MNIST: Larochelle & Murray's three .amat files (binarized_mnist_train,
_valid, _test; 50,000 / 10,000 / 10,000 images with their own split), in DATA_DIR or
DATA_DIR/binarized_mnist/. Without them matnet uses a seeded stand-in, labelled as such (data.py)."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from . import DataFileError, DatasetMissingError

SPLITS = ("train", "valid", "test")
_AMAT_FILES = {s: f"binarized_mnist_{s}.amat" for s in SPLITS}
TRAIN_FILE_IMAGES = 50000  # its own training file; no validation images are taken off it


def find_amat(root: Path) -> dict[str, Path] | None:
    """The three standard files, from DATA_DIR or DATA_DIR/binarized_mnist/; None if there are none."""
    for folder in (root, root / "binarized_mnist"):
        found = {s: folder / name for s, name in _AMAT_FILES.items() if (folder / name).is_file()}
        if len(found) == len(SPLITS):
            return found
        if found:  # half a benchmark would silently mix standard and stand-in splits
            missing = sorted(set(_AMAT_FILES.values()) - {p.name for p in found.values()})
            raise DatasetMissingError(f"fixed-binarized mnist: {folder} has {len(found)} of the 3 .amat files, "
                                      f"missing {', '.join(missing)}; add them or remove the others")
    return None


@functools.lru_cache(maxsize=3)
def read_amat(path: str) -> torch.Tensor:
    """One image per line, 784 space-separated 0/1 values in row-major order."""
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        raise DataFileError(f"{path}: cannot be read ({e})") from None
    # With spaces gone each line is exactly 784 digits; faster than np.loadtxt by two orders.
    lines = [line for line in text.translate(None, b" \t\r").split(b"\n") if line]
    bad = next((i for i, line in enumerate(lines) if len(line) != 784), None)
    if not lines or bad is not None:
        where = f"line {bad + 1}" if bad is not None else "the file is empty"
        raise DataFileError(f"{path}: expected 784 values of 0/1 per line ({where} differs); "
                            "replace it with a fresh copy")
    values = np.frombuffer(b"".join(lines), np.uint8) - ord("0")
    if values.max() > 1:
        raise DataFileError(f"{path}: values other than 0 and 1; replace it with a fresh copy")
    return torch.from_numpy(values.reshape(-1, 1, 28, 28))
