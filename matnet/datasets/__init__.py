"""The data sets matnet reads, one module each, registered here by name (adding a data set is adding
a module: it describes its images and how to read its files, and registers itself).

    mnist.py          MNIST and Fashion-MNIST: IDX files (LeCun's format)
    fixed_mnist.py    the fixed binarization of MNIST: Larochelle & Murray's .amat files
    omniglot.py       Burda's 28x28 chardata.mat
    cifar10.py        the python batches, read by an unpickler that allows plain data only
    image_folder.py   photographs anywhere under a folder (CelebA, LSUN, your own), at 64x64

Every reader parses its files itself (numpy, PIL): no data file can run code. matnet/data.py makes
the splits (train / valid / test) and the binarizations from what a reader returns.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import torch


class DatasetMissingError(RuntimeError):
    """The files of a dataset are nowhere to be found; the message says where they were looked for
    and how to get them."""


class DataFileError(RuntimeError):
    """A data file exists but cannot be used: truncated, not in the expected format, or (a pickle)
    refused because it would run code."""


class Raw(NamedTuple):
    """A data set's two files as uint8 [N, C, H, W] tensors, and where each was read from."""
    train: torch.Tensor
    test: torch.Tensor
    train_source: str
    test_source: str


@dataclass(frozen=True)
class Dataset:
    name: str
    shape: tuple[int, int, int]                   # (C, H, W) of its images
    read: Callable[[Path], Raw]                   # its training and test files, found from a folder
    train_file_images: Optional[int] = None       # images in its standard training file (None: count them)
    count_train_file: Optional[Callable[[Path], int]] = None  # ... counted without decoding them
    own_folder: bool = False                      # read from data.image_folder, not data.data_dir
    how_to_get: str = ""


REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    REGISTRY[dataset.name] = dataset
    return dataset


def _discover() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


_discover()
# The order users see them in (errors, --help); a data set added later comes after these, by name.
ORDER = ("mnist", "fashion-mnist", "omniglot", "cifar10", "image-folder")


def names() -> tuple[str, ...]:
    """The registered data sets' names (read at each call: a module registered later is one of them)."""
    return tuple(n for n in ORDER if n in REGISTRY) + tuple(sorted(set(REGISTRY) - set(ORDER)))
