"""Stand-ins for the data sets this machine cannot download, in their own file formats, cut from real
images that are offline: Omniglot's chardata.mat from MNIST's handwritten digits, CIFAR-10's python
batches from 32x32 patches of scikit-image's photographs, and an image folder of 64x64 crops of the
same photographs (the faces preset's data.image_folder). For checks that every preset trains
(`python -m matnet.bench presets --data-dir DIR --images DIR/photos`), not for figures of merit.

    python scripts/stand_in_data.py DIR
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def photos() -> list[np.ndarray]:
    import skimage.data
    names = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "camera", "hubble_deep_field",
             "retina", "coins", "moon", "grass", "brick")
    out = []
    for name in names:
        img = np.asarray(getattr(skimage.data, name)())
        out.append(img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2))
    return out


def crops(images: list[np.ndarray], size: int, stride: int) -> np.ndarray:
    return np.stack([img[y:y + size, x:x + size] for img in images
                     for y in range(0, img.shape[0] - size + 1, stride)
                     for x in range(0, img.shape[1] - size + 1, stride)])


def write_omniglot(folder: Path, train: int = 8000, test: int = 1000) -> None:
    """Burda's layout: 784 x N float64 columns, each image flattened column-major, values in [0, 1]."""
    import scipy.io
    sys.path.insert(0, str(ROOT))
    from matnet.sections import DataConfig
    from matnet.data import load_split
    digits = load_split(DataConfig(dataset="mnist", binarize="none", val_size=0), "train").images[:train + test]
    images = digits[:, 0].numpy().astype(np.float64) / 255.0
    columns = np.stack([img.flatten(order="F") for img in images], axis=1)
    scipy.io.savemat(folder / "chardata.mat", {"data": columns[:, :train], "testdata": columns[:, train:]})


def write_cifar(folder: Path, patches: np.ndarray) -> None:
    """Batches as the official ones: a dict with bytes keys, b'data' uint8 [n, 3072] (R, G, B planes)."""
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, chunk in zip(names, np.array_split(patches, len(names))):
        batch = {b"batch_label": name.encode(), b"data": chunk.transpose(0, 3, 1, 2).reshape(len(chunk), 3072),
                 b"labels": [i % 10 for i in range(len(chunk))],
                 b"filenames": [f"patch_{i}.png".encode() for i in range(len(chunk))]}
        (out / name).write_bytes(pickle.dumps(batch, protocol=2))


def write_image_folder(folder: Path, images: np.ndarray) -> None:
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:05d}.png")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    pictures = photos()
    write_omniglot(folder)
    write_cifar(folder, crops(pictures, 32, 14))
    write_image_folder(folder / "photos", crops(pictures, 64, 24))
    print(f"stand-in data in {folder}: chardata.mat, cifar-10-batches-py/, photos/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
