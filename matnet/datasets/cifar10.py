"""CIFAR-10: the python batches (cifar-10-batches-py/ in DATA_DIR), read by an unpickler that allows
plain data and numpy arrays only (torchvision's reader unpickles anything, and checks each file's
MD5 against the published ones)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from . import DataFileError, Dataset, DatasetMissingError, Raw, register

_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray, numeric as _np_numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _np_multiarray, numeric as _np_numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1"); allow only that.
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode(..., {encoding!r}): only latin1 text is allowed")
    return text.encode("latin1")


# The only globals a CIFAR-10 batch needs: numpy's array reconstruction (old and new module names,
# pickle protocols 2 to 5) and the latin1 trick above. Everything else could run code.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _np_numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _np_numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays; refuses any other class or function, so a hostile
    file in the data directory cannot run code."""

    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays and plain "
                                         "data are allowed in a data file") from None


def _read_cifar_batch(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the official batches are Python 2 pickles with str keys and data.
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except Exception as e:  # UnpicklingError, EOFError, ValueError, ... from a bad or hostile file
        raise DataFileError(f"{path}: not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFileError(f"{path}: expected a dict whose b'data' is uint8 [N, 3072], got {got}")
    # Each row holds the red, green and blue planes in turn, each 32x32 row-major: that is CHW.
    return data.reshape(-1, 3, 32, 32)


def _load_cifar10(root: Path) -> Raw:
    folder = root / "cifar-10-batches-py"
    names = (*_CIFAR_TRAIN_BATCHES, "test_batch")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DatasetMissingError(
            f"cifar10: missing {', '.join(missing)} in {folder}; download cifar-10-python.tar.gz from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and extract it so that {folder} exists")
    train = np.concatenate([_read_cifar_batch(folder / n) for n in _CIFAR_TRAIN_BATCHES])
    test = _read_cifar_batch(folder / "test_batch")
    # A copy: arrays rebuilt from a pickle may be read-only views of its buffer.
    return Raw(torch.from_numpy(train), torch.from_numpy(test.copy()), str(folder), str(folder / "test_batch"))


register(Dataset("cifar10", (3, 32, 32), _load_cifar10, train_file_images=50000,
                 how_to_get="https://www.cs.toronto.edu/~kriz/cifar.html"))
