"""The bounds a trained MatNet is scored by: the one-sample ELBO that training evaluates on the
validation split at every report, and the test log-likelihood as the IWAE bound with K importance
samples per image (2500 by default, as in the paper), with the ELBO and the mean KL of every layer.

    python -m matnet.evaluate runs/tiny/checkpoint --samples 1000 --limit 1000 --json eval.json

`--limit N` scores a seeded sample of N images spread over the whole split (subset.py), the same for
every model; the JSON records it (`subset`) and the printed table says the figure is not on the full
split. On a GPU the IWAE passes are sized from free memory to fill the card (objectives.rows_that_fit).
"""
from __future__ import annotations

import math
from functools import partial
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from . import cli
from .build import is_conditional
from .checkpoint import load_checkpoint
from .locate import checkpoint_folder
from .config import ConfigError
from .data import Split, load_split
from . import device as devices
from .device import autocast, resolve_device, seeded_rng
from .masks import MaskMaker, fixed_masks
from .model import MatNet
from .objectives import CPU_ROWS_PER_PASS, iwae_bound, rows_that_fit
from .subset import caption, describe, subset_indices


def bits_per_dim(nll_nats: float, shape: tuple[int, ...]) -> float:
    return nll_nats / (math.prod(shape) * math.log(2.0))


@torch.no_grad()
def evaluate_elbo(model: MatNet, split: Split, limit: int, batch_size: int, device: torch.device,
                  amp: bool, seed: int = 1234, masks: MaskMaker | None = None) -> dict[str, Any]:
    """One-sample ELBO over (the first `limit` images of) a split: -ELBO and its two parts, in nats
    per image, and the mean KL of every latent layer. With `masks` (a conditional MatNet), the bound
    of eq. 6 on the unknown pixels, under masks that are the same at every evaluation."""
    was_training = model.training
    model.eval()
    n = len(split) if limit <= 0 else min(limit, len(split))
    known = fixed_masks(masks, n, seed) if masks is not None else None
    tot_recon, tot_kl, kl_layers = 0.0, 0.0, None
    # The same noise at every evaluation (curves show the model, not the draw), drawn without
    # touching the training run's generators.
    with seeded_rng(seed, device):
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n))
            x = split.batch(idx).to(device)
            with autocast(device, amp):
                out = model(x) if known is None else model(x, known[idx].to(device))
            tot_recon += -out.log_px.float().sum().item()
            kl = out.kl_per_layer.float().sum(0)
            tot_kl += kl.sum().item()
            kl_layers = kl if kl_layers is None else kl_layers + kl
    model.train(was_training)
    m = {"elbo_nats": (tot_recon + tot_kl) / n, "recon_nats": tot_recon / n, "kl_nats": tot_kl / n,
         "kl_per_layer": [round(v / n, 5) for v in kl_layers.tolist()], "n_images": n}
    if split.binarize == "none":  # with masks: per unknown dimension
        dims = split.shape if known is None else (split.shape[0] * (~known).float().sum((1, 2, 3)).mean().item(),)
        m["bpd"] = bits_per_dim(m["elbo_nats"], dims)
    return m


def evaluate_iwae(model: MatNet, split, k: int, limit: int = 0, batch_size: int = 0,
                  device: torch.device | str = "cpu", rows_per_pass: int = 0, seed: int = 0,
                  amp: bool = False, progress: bool = True, masks: MaskMaker | None = None,
                  subset_seed: int = 0, make_bar: Callable[..., Any] | None = None) -> dict[str, Any]:
    """IWAE_k and ELBO over a split (or a seeded sample of `limit` images spread over it: subset.py),
    in nats per image (as negative log-likelihood bounds: lower is better). A conditional MatNet is
    scored on its unknown pixels (eq. 6), under masks drawn by `masks` (default: the model's own,
    those of its training data) with a seeded generator.

    `rows_per_pass` (network rows, images x samples, per forward pass; 0: as many as fit, from the
    device's free memory) and `batch_size` (images per batch; 0: enough to fill a pass) change only
    the speed: the k importance weights of an image are combined by one log-sum-exp in float64.
    `make_bar(total=, desc=, unit=)` makes the progress bar (default: tqdm's, shown when `progress`); a
    Ray task passes Ray's, which the driver shows."""
    if k < 1:
        raise ConfigError(f"--samples must be >= 1, got {k}")
    if limit < 0 or batch_size < 0 or rows_per_pass < 0:
        raise ConfigError(f"--limit, --batch-size and --rows must be >= 0 (0: automatic), got {limit}, "
                          f"{batch_size}, {rows_per_pass}")
    device = torch.device(device)
    indices = subset_indices(len(split), limit, subset_seed)
    n = len(indices)
    masks, known = _conditional_masks(model, masks, n, seed)
    model.eval()
    if make_bar is None:
        make_bar = partial(tqdm, disable=not progress, unit_scale=True, dynamic_ncols=True)
    bar = make_bar(total=n * k, desc=f"IWAE k={k}", unit="sample")
    t0 = time.perf_counter()
    with seeded_rng(seed, device):
        rows = rows_per_pass or (rows_that_fit(model, split.batch(indices[:1]).to(device), device, amp)
                                 if device.type == "cuda" else CPU_ROWS_PER_PASS)
        b = batch_size or max(1, min(n, rows // k))
        iwae_t, elbo_t, kl_t = _bounds(model, split, indices, known, k, rows, b, device, amp, bar)
    seconds = time.perf_counter() - t0
    bar.close()
    result = {
        "nll_nats": -iwae_t.mean().item(),
        "nll_stderr": (iwae_t.std().item() / math.sqrt(n)) if n > 1 else 0.0,
        "elbo_nats": -elbo_t.mean().item(),
        "iwae_k": k,
        "n_images": n,
        # None: the whole split; else which seeded sample of it (subset.py).
        "subset": describe(len(split), limit, subset_seed),
        "kl_per_layer": [round(v, 5) for v in kl_t.mean(0).tolist()],
        "dataset": split.name,
        "standard_benchmark": split.standard,
        "seconds": seconds, "samples_per_s": n * k / max(seconds, 1e-9),
        "rows_per_pass": rows, "images_per_batch": b, "bf16": bool(amp and device.type in devices.AUTOCAST_DEVICES),
    }
    return _per_dimension(result, split, masks, known)


def _conditional_masks(model: MatNet, masks: MaskMaker | None, n: int, seed: int) -> tuple[Any, Any]:
    """(the masks, the known-pixel masks of the n images) for a conditional MatNet; (masks, None) else."""
    if not is_conditional(model):
        return masks, None
    masks = masks or model.masks
    if masks is None:
        raise ConfigError("this conditional checkpoint's mask file is not here; impute with "
                          "python -m matnet.impute CKPT --mask KIND_OR_FILE")
    return masks, fixed_masks(masks, n, seed)


def _bounds(model: MatNet, split, indices: torch.Tensor, known: Any, k: int, rows: int, b: int,
            device: torch.device, amp: bool, bar: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IWAE_k and ELBO per image (float64, on the CPU) and the KL per layer, `b` images at a time."""
    iwae, elbo, kl = [], [], []
    for start in range(0, len(indices), b):
        idx = indices[start:start + b]
        x = split.batch(idx).to(device)
        extra = {} if known is None else {"known": known[start:start + b].to(device)}
        with autocast(device, amp):
            est = iwae_bound(model, x, k, rows, on_pass=lambda m, nb=len(idx): bar.update(m * nb), **extra)
        iwae.append(est.iwae)
        elbo.append(est.elbo)
        kl.append(est.kl_per_layer)
    return torch.cat(iwae).double().cpu(), torch.cat(elbo).double().cpu(), torch.cat(kl)


def _per_dimension(result: dict[str, Any], split, masks: Any, known: Any) -> dict[str, Any]:
    """A conditional model's bound is on its unknown pixels; 8-bit data adds bits per dimension."""
    dims: Any = split.shape
    if known is not None:
        unknown = (~known).float().sum((1, 2, 3)).mean().item()
        result.update(bound_on="unknown pixels: log p(x_u | x_k), eq. 6", mask=masks.describe(),
                      unknown_pixels=unknown)
        dims = (max(unknown, 1.0) * split.shape[0],)  # bits per unknown dimension
    if split.binarize == "none":  # colour / 8-bit data: bits per dimension, discrete-corrected
        result["bpd"] = bits_per_dim(result["nll_nats"], dims)
        result["elbo_bpd"] = bits_per_dim(result["elbo_nats"], dims)
    return result


def print_table(r: dict[str, Any]) -> None:
    print(f"{'data':>14}  {r['dataset']}  ({r['n_images']} images: {caption(r.get('subset'), 'split')})")
    if "bound_on" in r:
        print(f"{'bound on':>14}  {r['bound_on']}  (mask {r['mask']}, {r['unknown_pixels']:.0f} unknown pixels)")
    print(f"{'IWAE k=' + str(r['iwae_k']):>14}  {r['nll_nats']:.3f} nats  (+- {r['nll_stderr']:.3f})")
    print(f"{'ELBO':>14}  {r['elbo_nats']:.3f} nats")
    if "bpd" in r:
        print(f"{'bits/dim':>14}  {r['bpd']:.4f} (IWAE)  {r['elbo_bpd']:.4f} (ELBO)")
    kl = r["kl_per_layer"]
    print(f"{'KL per layer':>14}  " + " ".join(f"{v:.2f}" for v in kl) + f"   (sum {sum(kl):.2f})")


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m matnet.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=checkpoint_folder,
                   help="a checkpoint directory (RUN_DIR/checkpoint, a search's best/), or models:/NAME@champion, "
                        "runs:/RUN_ID/model (MLflow)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--samples", type=cli.at_least(1), default=2500, help="importance samples K per image (default 2500)")
    p.add_argument("--limit", type=cli.at_least(0, "0: all"), default=0,
                   help="evaluate a seeded sample of N images spread over the split (default: all of it)")
    p.add_argument("--subset-seed", type=int, default=0, help="which sample --limit takes (default 0)")
    p.add_argument("--batch-size", type=cli.at_least(0, "0: automatic"), default=0,
                   help="images per batch (default: enough to fill a pass)")
    p.add_argument("--rows", type=cli.at_least(0, "0: automatic"), default=0,
                   help="network rows (images x samples) per forward pass (default: as many as fit in memory)")
    p.add_argument("--amp", action="store_true",
                   help="bf16 autocast on CUDA (importance weights still accumulate in fp32; default fp32)")
    p.add_argument("--data-dir", help="where the data set's files are (default: the checkpoint's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the figures as JSON to this path")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from .folders import checkpoint_argument
    from .outputs import check_output, write_json
    from .validate import validate
    # Everything that can be checked is, before the IWAE run (hours at k=2500): the output, the
    # checkpoint, its config with the overrides.
    json_out = check_output(args.json, "--json") if args.json is not None else None
    device = resolve_device(args.device)
    model, cfg, _ = load_checkpoint(checkpoint_argument(args.checkpoint), device)
    if args.data_dir:
        cfg = cfg.override("data.data_dir", args.data_dir)
    validate(cfg, training=False)
    split = load_split(cfg.data, args.split)
    r = evaluate_iwae(model, split, args.samples, args.limit, args.batch_size, device, args.rows,
                      args.seed, args.amp, progress=not args.quiet, subset_seed=args.subset_seed)
    r["split"], r["checkpoint"] = args.split, str(Path(args.checkpoint).resolve())
    print_table(r)
    if json_out is not None:
        write_json(json_out, r)
    return 0


if __name__ == "__main__":
    cli.run(main)
