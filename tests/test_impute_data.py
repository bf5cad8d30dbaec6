"""The image-folder data set (CelebA, LSUN, any photographs) at 64x64, on a small folder of real
photographs: scikit-image's bundled sample images, written by the test as JPEG and PNG files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from matnet.config import ConfigError

from matnet.sections import DataConfig
from matnet.data import DataFileError, DatasetMissingError, load_split, read_image_folder
from tests.helpers import PHOTOS, write_photos

@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    return folder, write_photos(folder)


def test_real_photographs_load_at_64x64(photos):
    folder, arrays = photos
    data = DataConfig(dataset="image-folder", image_folder=str(folder), binarize="none", val_size=2)
    train, valid, test = (load_split(data, s) for s in ("train", "valid", "test"))
    # Sorted by path, the last 10% (at least one) are the test split; valid is the end of the rest.
    assert (len(train), len(valid), len(test)) == (9, 2, 1)
    for split in (train, valid, test):
        assert split.shape == (3, 64, 64) and split.images.dtype == torch.uint8
        assert split.name.startswith("image-folder/") and split.source == str(folder.resolve())
    # Real photographs: varied content, full range; a grayscale photograph comes out gray.
    everything = torch.cat([train.images, valid.images, test.images])
    assert everything.float().std() > 40 and everything.max() > 240 and everything.min() < 15
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".jpg", ".png"))
    order = [p.name.split("_", 1)[1].rsplit(".", 1)[0] for p in files]
    camera = everything[order.index("camera")].float()
    assert (camera[0] - camera[1]).abs().max() <= 1 and (camera[1] - camera[2]).abs().max() <= 1
    # The astronaut: the centred square crop resized to 64x64, independently of the loader.
    astronaut = Image.fromarray(arrays[PHOTOS.index("astronaut")]).resize((64, 64), Image.Resampling.BICUBIC)
    expect = torch.from_numpy(np.array(astronaut)).permute(2, 0, 1).float()
    assert (everything[order.index("astronaut")].float() - expect).abs().mean() < 2.0
    batch = train.batch(torch.arange(3))
    assert batch.dtype == torch.float32 and batch.shape == (3, 3, 64, 64)


def test_a_folder_read_for_a_grayscale_model(photos):
    folder, _ = photos
    images, files = read_image_folder(folder, 28, 1, limit=5)
    assert images.shape == (5, 1, 28, 28) and len(files) == 5


def test_folder_errors_are_one_line(tmp_path, photos):
    cases = [
        (DataConfig(dataset="image-folder"), ConfigError, "data.image_folder"),
        (DataConfig(dataset="image-folder", image_folder=str(tmp_path / "nowhere")), DatasetMissingError, "no such folder"),
        (DataConfig(dataset="image-folder", image_folder=str(tmp_path)), DatasetMissingError, "no image files"),
    ]
    for data, error, msg in cases:
        with pytest.raises(error, match=msg) as e:
            load_split(data, "test")
        assert "\n" not in str(e.value)
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("RGB", (10, 10)).save(bad / "a.png")
    (bad / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataFileError, match="b.jpg") as e:
        read_image_folder(bad)
    assert "\n" not in str(e.value)
