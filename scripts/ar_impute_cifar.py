"""Imputation with and without the autoregressive head, measured on the same images and masks.

    python scripts/ar_impute_cifar.py --minutes 6 --images 40 --json docs/ar-impute-cifar.json

CIFAR-10 itself cannot be had offline, so the data set is real photographs (scikit-image's sample
images) cut into 32x32 patches and written in CIFAR-10's own file format (tests/cifar_files.py does the
same for the tests). Two narrow versions of the paper's CIFAR-10 model (discretized logistic on 8-bit
pixels) train for the same wall time, one with the local autoregressive head (model.ar_layers) and one
without; then `python -m matnet.impute` scores both on the same test images with the centre quarter
hidden (the same masks, seeds and chain length): the MSE of the mean imputation, and the estimate of
-log p(x_u | x_k) (gibbs.py for the plain model, ar_impute.py for the head).
"""
from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def patches(step: int = 24) -> np.ndarray:
    import skimage.data as sk
    images = [sk.astronaut(), sk.chelsea(), sk.coffee(), sk.rocket(), sk.immunohistochemistry(), sk.hubble_deep_field(),
              sk.retina(), sk.colorwheel(), sk.logo()[..., :3] if hasattr(sk, "logo") else sk.coffee()]
    out = [img[y:y + 32, x:x + 32, :3] for img in images if img.ndim == 3
           for y in range(0, img.shape[0] - 32, step) for x in range(0, img.shape[1] - 32, step)]
    rng = np.random.default_rng(0)
    return np.stack(out)[rng.permutation(len(out))]


def write_cifar(folder: Path, data: np.ndarray, test: int) -> None:
    folder.mkdir(parents=True)
    train, held = data[:-test], data[-test:]
    for i, chunk in enumerate(np.array_split(train, 5), 1):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": chunk.transpose(0, 3, 1, 2).reshape(-1, 3072)}))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": held.transpose(0, 3, 1, 2).reshape(-1, 3072)}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=6.0, help="training wall time of each model")
    p.add_argument("--images", type=int, default=40, help="test images imputed")
    p.add_argument("--iwae-k", type=int, default=20)
    p.add_argument("--gibbs-steps", type=int, default=5)
    p.add_argument("--json")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from matnet.sections import MetaModule
    from matnet.presets import preset
    from matnet.train import train

    results = {}
    with tempfile.TemporaryDirectory(prefix="matnet-ar-") as tmp:
        data = patches()
        write_cifar(Path(tmp) / "data" / "cifar-10-batches-py", data, test=400)
        for name, ar_layers in (("plain", 0), ("head", 3)):
            cfg = preset("cifar10-conv").with_overrides({
                "data.data_dir": f"{tmp}/data", "data.val_size": 300, "data.eval_limit": 300,
                "model.ar_layers": ar_layers, "model.ar_channels": 24, "model.data_width": 32,
                "model.top_latents": 16, "train.max_minutes": args.minutes, "train.epochs": 1000,
                "train.batch_size": 32, "train.eval_every_steps": 200, "train.device": "cpu", "train.lr": 1e-3})
            cfg.model.meta_modules = [MetaModule(8, 48, 1, 4), MetaModule(16, 32, 2, 4), MetaModule(32, 32, 2, 4)]
            started = time.monotonic()
            last = train(cfg, Path(tmp) / name, progress=False)
            trained = round(time.monotonic() - started)
            started = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "matnet.impute", f"{tmp}/{name}/checkpoint", "--mask", "centre",
                                "--limit", str(args.images), "--samples", "4", "--iwae-k", str(args.iwae_k),
                                "--gibbs-steps", str(args.gibbs_steps), "--grid-images", "6", "--batch-size", "20",
                                "--out", f"{tmp}/{name}.png", "--json", f"{tmp}/{name}.json", "--quiet"],
                               cwd=ROOT, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            scored = json.loads(Path(f"{tmp}/{name}.json").read_text())
            results[name] = {"ar_layers": ar_layers, "train_steps": last["step"], "train_seconds": trained,
                             "val_elbo_nats": last["val_elbo_nats"], "val_bpd": last.get("val_bpd"),
                             "impute_seconds": round(time.monotonic() - started),
                             **{k: scored[k] for k in ("method", "nll_kind", "nll_nats", "mse", "unknown_pixels")},
                             "bpd_unknown": scored["table"][0].get("bpd"),
                             "acceptance": scored["table"][0].get("acceptance")}
            print(f"{name:>6}: {last['step']} steps, val {last.get('val_bpd', 0):.3f} bits/dim; centre hidden: "
                  f"NLL {scored['nll_nats']:.1f} nats ({results[name]['bpd_unknown']:.3f} bits/dim), MSE "
                  f"{scored['mse']:.4f}, acceptance {results[name]['acceptance']}", flush=True)
    from matnet.record import stamp
    out = {**stamp("python scripts/ar_impute_cifar.py"),
           "data": f"{len(data)} 32x32 patches of scikit-image's photographs in CIFAR-10's file format, 400 held out",
           "mask": "centre quarter hidden", "images": args.images, "iwae_k": args.iwae_k,
           "gibbs_steps": args.gibbs_steps, "minutes_each": args.minutes, "models": results}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
