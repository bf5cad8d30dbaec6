"""A grid of images drawn from a trained MatNet.

    python -m matnet.sample CKPT_DIR --n 64 --out samples.png
"""
from __future__ import annotations

import argparse

import torch

from . import cli
from .checkpoint import load_checkpoint
from .plots import save_grid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m matnet.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a checkpoint directory (RUN_DIR/checkpoint, or a search's best/)")
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--out", default="samples.png", help="PNG to write (default samples.png)")
    p.add_argument("--draw", action="store_true",
                   help="draw x ~ p(x|z) instead of showing the mean of p(x|z)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.n < 1:
        raise cli.ConfigError("--n must be at least 1")
    device = cli.resolve_device(args.device)
    model, _, _ = load_checkpoint(args.checkpoint, device)
    torch.manual_seed(args.seed)
    images = model.sample(args.n, mean=not args.draw)
    path = save_grid(images, args.out)
    print(f"wrote {path} ({args.n} samples, {'draws' if args.draw else 'means'} of p(x|z))")
    return 0


if __name__ == "__main__":
    cli.run(main)
