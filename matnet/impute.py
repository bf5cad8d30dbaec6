"""Impute unknown pixels with any checkpoint, and score the imputations.

    python -m matnet.impute CKPT --mask quadrants --limit 1000 --json quadrants.json
    python -m matnet.impute CKPT --images photos/ --mask occluders --occluders 3 --size 20 --out grid.png

Writes a grid (one row per image: the original, the masked input with unknown pixels in gray, then
--samples imputations) and prints, per mask setting, the NLL of the unknown pixels in nats per image
and the mean squared error of the mean imputation (the average of the --samples imputations), per
unknown pixel value on a [0, 1] intensity scale.

A conditional checkpoint (data.task=impute) imputes directly: z ~ p(z | x_k), x_u from p(x_u | z, x_k)
(eq. 3); its NLL is the IWAE bound on log p(x_u | x_k) over the conditional model (an upper bound on
the NLL). An unconditional checkpoint (a search's best/, any data.task=generate run) imputes by a
Markov chain that clamps the known pixels (gibbs.py: Metropolis-within-Gibbs by default, or
pseudo-Gibbs); its NLL is the importance-sampling estimate IWAE log p(x) - IWAE log p(x_k) (not a
bound; at small --iwae-k it runs a few nats low). The output names the method and the kind of NLL.

--mask quadrants without --visible gives the paper's table: one row each for 1, 2 and 3 visible
quadrants (the same images), and their mean (what 1-3 visible quadrants drawn uniformly give).
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from . import cli
from .build import is_conditional
from .checkpoint import load_checkpoint
from .config import Config, ConfigError
from .data import Split, load_split, read_image_folder
from .device import resolve_device
from .gibbs import METHODS, method_name
from .imputation import grid_rows, score
from .locate import checkpoint_folder
from .masks import MaskMaker, fixed_masks, mask_maker
from .plots import save_grid
from .subset import caption, describe, subset_indices

CONDITIONAL_METHOD = "conditional MatNet: z ~ p(z | x_k), x_u ~ p(x_u | z, x_k) (eq. 3)"


def load_images(args: argparse.Namespace, cfg: Config, shape: tuple[int, int, int]) -> tuple[Split, str]:
    """The images to impute: a folder of photographs (--images), else a split of a data set."""
    binarize = "none" if cfg.data.binarize == "none" else "dynamic"
    if args.images:
        images, files = read_image_folder(args.images, shape[1], shape[0], args.limit)
        return Split(images, binarize, f"{args.images} ({len(files)} images)", standard=False,
                     source=str(args.images)), str(args.images)
    data = cfg.data
    if args.dataset:
        data = replace(data, dataset=args.dataset)
    if args.data_dir:
        data = replace(data, data_dir=args.data_dir)
    split = load_split(data, args.split)
    if split.shape != tuple(shape):
        raise ConfigError(f"the checkpoint models {'x'.join(map(str, shape))} images, {data.dataset} has "
                          f"{'x'.join(map(str, split.shape))}; use the data set it was trained on")
    return split, split.name


def mask_settings(args: argparse.Namespace, cfg: Config, shape) -> list[tuple[str, MaskMaker]]:
    """The mask settings to score: [(label, maker)]. quadrants without --visible: 1, 2 and 3 visible."""
    data = cfg.data
    for flag, key in (("occluders", "occluders"), ("visible", "visible_quadrants")):
        if getattr(args, flag) is not None:
            data = replace(data, **{key: getattr(args, flag)})
    if args.size is not None:
        data = replace(data, occluder_size=args.size, centre_size=args.size)
    maker = mask_maker(data, shape, args.mask)
    if maker.kind == "quadrants" and maker.visible == 0:
        return [(f"{v} visible", replace(maker, visible=v)) for v in (1, 2, 3)]
    return [(maker.describe(), maker)]


def parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m matnet.impute", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=checkpoint_folder,
                   help="a checkpoint directory: conditional (data.task=impute) or not (a search's best/), or "
                        "models:/NAME@champion, runs:/RUN_ID/model (MLflow)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", help="the data set to impute (default: the checkpoint's)")
    src.add_argument("--images", help="a folder of photographs to impute instead (resized to the model's images)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--limit", type=cli.at_least(0, "0: all"), default=1000,
                   help="images to score: a seeded sample spread over the split (default 1000; 0: all)")
    p.add_argument("--subset-seed", type=int, default=0, help="which sample --limit takes (default 0)")
    p.add_argument("--mask", help="quadrants | occluders | centre | an image file, white = unknown "
                                  "(default: the checkpoint's data.mask)")
    p.add_argument("--visible", type=int, choices=[1, 2, 3], help="quadrants: visible ones (default: a row for each)")
    p.add_argument("--occluders", type=cli.at_least(1), help="occluders: how many squares")
    p.add_argument("--size", type=cli.at_least(0, "centre: 0 is half the image side"), help="occluders: their side; centre: the hidden square's side")
    p.add_argument("--samples", type=cli.at_least(1), default=8, help="imputations per image (default 8)")
    p.add_argument("--iwae-k", type=cli.at_least(1), default=100, help="importance samples per image for the NLL (default 100)")
    p.add_argument("--method", choices=list(METHODS), default="mwg",
                   help="unconditional checkpoints: the chain (default mwg: Metropolis-within-Gibbs)")
    p.add_argument("--gibbs-steps", type=cli.at_least(1), default=20, help="unconditional checkpoints: chain steps (default 20)")
    p.add_argument("--grid-images", type=cli.at_least(1), default=8, help="images (rows) in the grid (default 8)")
    p.add_argument("--out", default="imputations.png",
                   help="the grid image to write; its format from the extension (default imputations.png)")
    p.add_argument("--json", help="also write the figures as JSON to this path")
    p.add_argument("--batch-size", type=cli.at_least(1), default=50, help="images per batch (default 50)")
    p.add_argument("--rows", type=cli.at_least(1), default=1000, help="network rows per IWAE pass; lower it if memory is short")
    p.add_argument("--data-dir", help="where the data set's files are (default: the checkpoint's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .folders import checkpoint_argument
    from .outputs import check_outputs, write_json
    # The outputs are checked before the checkpoint is read and anything is scored.
    args.out, args.json = check_outputs(("--out", args.out, True), ("--json", args.json, False))

    device = resolve_device(args.device)
    model, cfg, _ = load_checkpoint(checkpoint_argument(args.checkpoint), device)
    shape = tuple(model.image_shape)
    settings = mask_settings(args, cfg, shape)
    split, source = load_images(args, cfg, shape)
    # --images reads the first --limit files of the folder (sorted by path); a split is sampled.
    indices = torch.arange(len(split)) if args.images else subset_indices(len(split), args.limit, args.subset_seed)
    subset = None if args.images else describe(len(split), args.limit, args.subset_seed)
    # The same images, binarizations and masks for every model scored with the same --seed.
    x_all = split.batch(indices, torch.Generator().manual_seed(args.seed))
    torch.manual_seed(args.seed)
    rows = []
    for i, (label, maker) in enumerate(settings):
        known = fixed_masks(maker, len(indices), args.seed + i)
        r = score(model, x_all, known, args.samples, args.iwae_k, args.batch_size, args.rows, args.method,
                  args.gibbs_steps, device, not args.quiet, label)
        rows.append({"mask": label, **({"visible": maker.visible} if maker.kind == "quadrants" else {}), **r})
    grid = draw_grid(model, x_all, settings, args, device)
    result = {**described(model, args, rows), "n_images": len(indices), "subset": subset, "dataset": source,
              "split": None if args.images else args.split, "grid": str(grid)}
    print_table(result)
    if args.json:
        write_json(args.json, result)
    return 0


def draw_grid(model, x_all: torch.Tensor, settings: list[tuple[str, MaskMaker]], args: argparse.Namespace,
              device: torch.device) -> Path:
    """The grid: masks as the setting draws them (quadrants: 1-3 visible per image, as in training)."""
    g = min(args.grid_images, x_all.shape[0])
    grid_maker = replace(settings[0][1], visible=0) if len(settings) > 1 else settings[0][1]
    known_g = fixed_masks(grid_maker, g, args.seed + 1000)
    pictures = grid_rows(model, x_all[:g].to(device), known_g.to(device), args.samples, args.method,
                         args.gibbs_steps)
    return save_grid(pictures, args.out, nrow=2 + args.samples)


def described(model, args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of the mask settings, their mean, and what was measured how (the JSON's fields)."""
    conditional = is_conditional(model)
    method = CONDITIONAL_METHOD if conditional else method_name(model, args.method)
    if hasattr(model, "stage2"):
        method += "; two-stage: stage 2 refines stage 1's imputation"
    top = {k: sum(r[k] for r in rows) / len(rows) for k in ("nll_nats", "mse", "unknown_pixels")}
    result: dict[str, Any] = {
        "method": method,
        "nll_kind": ("IWAE bound on -log p(x_u | x_k) over the conditional model (an upper bound on the NLL)"
                     if conditional else
                     ("estimate IWAE log p(x) - IS log p(x_k) over z and x_u drawn by the head with x_k clamped "
                      "(not a bound; runs low at small k)" if getattr(model, "ar_head", None) is not None else
                      "estimate IWAE log p(x) - IWAE log p(x_k), known-pixel likelihood for p(x_k) (not a bound; "
                      "runs low at small k)")),
        **top,
        "mse_units": "per unknown pixel value, intensities on a [0, 1] scale; mean imputation = mean of the samples",
        "iwae_k": args.iwae_k, "samples": args.samples,
        "mask": "quadrants: 1, 2 and 3 visible (mean of the rows)" if len(rows) > 1 else rows[0]["mask"],
        "table": rows, "checkpoint": str(Path(args.checkpoint).resolve()), "seed": args.seed,
    }
    if not conditional:
        result.update(gibbs_steps=args.gibbs_steps, chain=args.method)
    return result


def print_table(r: dict[str, Any]) -> None:
    print(f"{'method':>9}  {r['method']}")
    print(f"{'NLL':>9}  {r['nll_kind']}, k={r['iwae_k']}")
    print(f"{'data':>9}  {r['dataset']}  ({r['n_images']} images"
          + (f": {caption(r['subset'], 'split')})" if r.get("split") else ")"))
    rows = r["table"] + ([{**r, "mask": "mean"}] if len(r["table"]) > 1 else [])
    w = max(9, *(len(row["mask"]) for row in rows))
    print(f"{'mask':>{w}} {'NLL (nats)':>11} {'MSE':>8} {'unknown px':>11}" + ("  accept" if "chain" in r else ""))
    for row in rows:
        acc = f"  {row['acceptance']:.2f}" if "acceptance" in row else ""
        print(f"{row['mask']:>{w}} {row['nll_nats']:>11.2f} {row['mse']:>8.4f} {row['unknown_pixels']:>11.0f}{acc}")
    print(f"grid: {r['grid']}")


if __name__ == "__main__":
    cli.run(main)
