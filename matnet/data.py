"""A data set's splits and binarizations, made from what its reader returns (matnet/datasets/: one
module per data set, each reading the standard files it is published in, so that no file can run
code). Files in DATA_DIR come first everywhere, so a user's own copy always wins over a packaged one.

Splits: "valid" is the END of the training file (`val_size` images), "train" the rest (optionally cut to
its first `train_limit` images), "test" the test file. The fixed binarization of MNIST is the standard
one of Larochelle & Murray (the `binarized_mnist_*.amat` files, with their own split) when present;
otherwise, and for every other dataset, a seeded stand-in that is labelled as such and must not be
reported as the standard benchmark.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from matnet.config import ConfigError

from matnet.sections import DataConfig

from .datasets import REGISTRY, DataFileError, DatasetMissingError
from .datasets import names as dataset_names
from .datasets import fixed_mnist
from .datasets.image_folder import IMAGE_EXTENSIONS, image_files, read_image, read_image_folder
from .datasets.mnist import DEBIAN_FASHION_MNIST_DIR, read_idx

__all__ = ["BINARIZATIONS", "dataset_names", "DEBIAN_FASHION_MNIST_DIR", "DataFileError", "DatasetMissingError",
           "IMAGE_EXTENSIONS", "SPLITS", "Split", "check_source", "dataset_info", "image_files", "load_split",
           "read_idx", "read_image", "read_image_folder", "source_folder", "source_problems", "training_images"]

BINARIZATIONS: tuple[str, ...] = ("dynamic", "fixed", "none")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
DEFAULT_DATA_DIR = DataConfig().data_dir

# The seeded stand-in for a fixed binarization: generator seed per file (train file 0, test file 1).
# Train and valid share one draw of the training file, so an image keeps its binarization whatever
# val_size or train_limit are.
_STAND_IN_SEED = 0
_STAND_IN_OFFSET = {"train": 0, "test": 1}


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
    _check_choice("data.dataset", name, dataset_names())
    return REGISTRY[name].shape


def source_problems(data: DataConfig) -> list[str]:
    """What makes `data` name no data set to read, before any file is read: an unknown data set or
    binarization, an image-folder data set without its folder, a data.data_dir that is not there
    (given, it must be: a typo would otherwise fall back to a packaged copy, and a run would train on
    data its user did not mean). The one place these rules live: validate.py, the search's space
    checks and this module's readers ask here."""
    found = []
    if data.dataset not in dataset_names():
        found.append(_unknown("data.dataset", data.dataset, dataset_names()))
    if data.binarize not in BINARIZATIONS:
        found.append(_unknown("data.binarize", data.binarize, BINARIZATIONS))
    if data.dataset in REGISTRY and REGISTRY[data.dataset].own_folder and not data.image_folder:
        found.append(f"data.dataset={data.dataset} needs data.image_folder=PATH, the folder of photographs "
                     f"(e.g. CelebA's img_align_celeba)")
    if data.data_dir != DEFAULT_DATA_DIR and not Path(data.data_dir).expanduser().is_dir():
        found.append(f"data.data_dir={data.data_dir}: no such folder; fix the path, or leave data_dir out to read "
                     f"the data set from ./{DEFAULT_DATA_DIR} or its packaged copy")
    return found


def check_source(data: DataConfig) -> None:
    found = source_problems(data)
    if found:
        raise ConfigError(found[0])


def source_folder(data: DataConfig) -> str:
    """The folder the data set's files are read from first (the image folder, or data.data_dir)."""
    return data.image_folder if REGISTRY[data.dataset].own_folder else data.data_dir


def training_images(data: DataConfig) -> int:
    """How many images the training split of `data` holds, known without reading them (the
    training budget is counted from it: budget.py). The same arithmetic as load_split."""
    check_source(data)
    dataset = REGISTRY[data.dataset]
    root = Path(source_folder(data)).expanduser()
    if data.binarize == "fixed" and data.dataset == "mnist" and fixed_mnist.find_amat(root):
        n = fixed_mnist.TRAIN_FILE_IMAGES  # its own training file; no validation images are taken off it
        return min(n, data.train_limit) if data.train_limit > 0 else n
    if dataset.count_train_file is not None:
        in_file = dataset.count_train_file(root)
    elif dataset.train_file_images is not None:
        in_file = dataset.train_file_images
    else:  # a data set that states neither: its training file is read to count them
        in_file = _load_raw(data.dataset, str(root)).train.shape[0]
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
        amat = fixed_mnist.find_amat(Path(data_dir))
        if amat is not None:
            images = fixed_mnist.read_amat(str(amat[split]))
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


# Training and evaluation call load_split again and again: parse each dataset once per process.
# (A file changed on disk while the process runs is not noticed.)
@functools.lru_cache(maxsize=8)
def _load_raw(dataset: str, data_dir: str):
    return REGISTRY[dataset].read(Path(data_dir))


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
