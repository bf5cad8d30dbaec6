"""A small data set in CIFAR-10's own file format, cut from real photographs (scikit-image's sample
images), for tests of the CIFAR-10 loader and of colour models; CIFAR-10 itself is not offline."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest


def photo_patches(step_y: int = 97, step_x: int = 131) -> np.ndarray:
    """Real photographs (scikit-image's samples) cut into 32x32 patches: uint8 [N, 32, 32, 3]."""
    skdata = pytest.importorskip("skimage.data")
    patches = []
    for img in (skdata.astronaut(), skdata.chelsea(), skdata.coffee()):
        for y in range(0, img.shape[0] - 32, step_y):
            for x in range(0, img.shape[1] - 32, step_x):
                patches.append(img[y:y + 32, x:x + 32, :3])
    return np.stack(patches)


def write_cifar(folder: Path, patches: np.ndarray, protocol: int = 2) -> None:
    """Batches as the official ones: a dict with bytes keys, b'data' uint8 [n, 3072] (R, G, B planes)."""
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, chunk in zip(names, np.array_split(patches, len(names))):
        batch = {b"batch_label": f"{name} of 6".encode(),
                 b"data": chunk.transpose(0, 3, 1, 2).reshape(len(chunk), 3072),
                 b"labels": [i % 10 for i in range(len(chunk))],
                 b"filenames": [f"patch_{i}.png".encode() for i in range(len(chunk))]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
