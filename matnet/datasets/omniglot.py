"""Omniglot: Burda's 28x28 `chardata.mat` (the IWAE paper's split), in DATA_DIR or DATA_DIR/omniglot/."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import DataFileError, Dataset, DatasetMissingError, Raw, register


def _load_omniglot(root: Path) -> Raw:
    candidates = [root / "chardata.mat", root / "omniglot" / "chardata.mat"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DatasetMissingError(
            f"omniglot: no chardata.mat in {candidates[0].parent} or {candidates[1].parent}; download "
            "https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat into one of them")
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types (ValueError, NotImplementedError for v7.3, ...)
        raise DataFileError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e})") from None
    parts = {}
    for part, key in (("train", "data"), ("test", "testdata")):
        array = mat.get(key)
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[0] != 784:
            got = getattr(array, "shape", None)
            raise DataFileError(f"{path}: expected '{key}' of shape 784 x N, got {got}")
        parts[part] = torch.from_numpy(omniglot_columns_to_images(array))
    return Raw(parts["train"], parts["test"], str(path), str(path))


def omniglot_columns_to_images(columns: np.ndarray) -> np.ndarray:
    """Burda's 784 x N floats in [0, 1] -> uint8 [N, 1, 28, 28], upright.

    MATLAB wrote each 28x28 image column-major, so pixel (row r, column c) sits at entry r + 28 c of its
    column; read row-major it would come out transposed. This is what the IWAE code's
    `.T.reshape(-1, 28, 28).reshape(-1, 784, order='F')` undoes.
    """
    n = columns.shape[1]
    images = columns.T.reshape(n, 28, 28, order="F")
    return np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)[:, None]


register(Dataset("omniglot", (1, 28, 28), _load_omniglot, train_file_images=24345,
                 how_to_get="https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat"))
