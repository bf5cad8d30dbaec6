"""A grid of images drawn from a trained MatNet, or (with a mixture prior) the by-component grid of
the paper's Figure 3.

    python -m matnet.sample CKPT_DIR --n 64 --out samples.png
    python -m matnet.sample CKPT_DIR --by-component --out components.png

--by-component: one column group per mixture component. The top row shows validation images whose
posterior over the components picks that component; each row below shows samples with the top k
latent layers (z_0 .. z_{k-1}) drawn from that image's posterior and the rest from the prior, one
row per k (--ks).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import cli
from .checkpoint import load_checkpoint
from .locate import checkpoint_folder
from .config import Config, ConfigError
from .data import load_split
from .device import resolve_device
from .model import MatNet
from .plots import save_grid, save_group_grid

DEFAULT_KS = (1, 2, 4, 6, 8, 10)  # the paper's rows
MAX_IMAGES = 10_000  # one grid; beyond it, memory runs out before the grid is readable (a CIFAR model: ~3 GB)


@torch.no_grad()
def assign_components(model: MatNet, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """Each image's posterior over the mixture components of p(z_0), [N, K]."""
    device = next(model.parameters()).device
    return torch.cat([model.component_posterior(images[s:s + batch_size].to(device)).cpu()
                      for s in range(0, len(images), batch_size)])


def pick_examples(resp: torch.Tensor, per_component: int, max_components: int) -> dict[int, list[int]]:
    """For every component that is the most probable one for some inputs: the `per_component`
    inputs it claims most confidently. Components with the most inputs first, at most max_components."""
    best = resp.argmax(1)
    counts = torch.bincount(best, minlength=resp.shape[1])
    order = [int(k) for k in torch.argsort(counts, descending=True, stable=True) if counts[k] > 0]
    chosen = {}
    for k in order[:max_components]:
        members = torch.nonzero(best == k).flatten()
        top = members[torch.argsort(resp[members, k], descending=True, stable=True)][:per_component]
        chosen[k] = top.tolist()
    return chosen


@torch.no_grad()
def by_component(model: MatNet, config: Config, out: str | Path, ks: list[int], per_component: int = 3,
                 max_components: int = 20, limit: int = 2000) -> dict[str, Any]:
    """Figure 3 from the validation split of the checkpoint's data set; returns what it shows."""
    if model.top_prior is None:
        raise ConfigError("--by-component needs a model trained with a mixture prior "
                          "(model.mixture_components > 0); this checkpoint has the plain N(0, I) prior")
    bad = [k for k in ks if not 0 <= k <= model.num_layers]
    if bad:
        raise ConfigError(f"--ks {bad}: each k must be between 0 and the number of latent layers ({model.num_layers})")
    split = load_split(config.data, "valid")
    n = len(split) if limit <= 0 else min(limit, len(split))
    images = split.batch(torch.arange(n), torch.Generator().manual_seed(0))
    resp = assign_components(model, images)
    chosen = pick_examples(resp, per_component, max_components)
    comps = [k for k, idx in chosen.items() if len(idx) == per_component]  # full column groups only
    if not comps:
        raise ConfigError(f"no component claims {per_component} of the {n} validation images; lower --per-component")
    device = next(model.parameters()).device
    x = torch.cat([images[chosen[k]] for k in comps]).to(device)             # [G * per, C, H, W]
    rows = [x] + [model.sample_given(x, k) for k in ks]
    table = torch.stack(rows).cpu().view(len(rows), len(comps), per_component, *x.shape[1:])
    groups = [table[:, g] for g in range(len(comps))]                        # [rows, per, C, H, W]
    save_group_grid(groups, out, eight_bit=config.model.likelihood != "bernoulli")
    counts = torch.bincount(resp.argmax(1), minlength=resp.shape[1])
    return {"path": str(out), "n_images": n, "components": model.top_prior.components, "ks": list(ks),
            "shown": [{"component": k, "inputs": chosen[k], "n_assigned": int(counts[k]),
                       "mean_responsibility": round(float(resp[chosen[k], k].mean()), 4)} for k in comps],
            "assigned_per_component": counts.tolist(),
            "mean_posterior_entropy": float(-(resp * resp.clamp_min(1e-12).log()).sum(1).mean())}


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m matnet.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=checkpoint_folder,
                   help="a checkpoint directory (RUN_DIR/checkpoint, a search's best/), or models:/NAME@champion, "
                        "runs:/RUN_ID/model (MLflow)")
    p.add_argument("--n", type=cli.between(1, MAX_IMAGES), default=64,
                   help=f"number of images (default 64, at most {MAX_IMAGES:,}: one grid)")
    p.add_argument("--out", default="samples.png",
                   help="the image to write; its format from the extension (default samples.png)")
    p.add_argument("--draw", action="store_true",
                   help="draw x ~ p(x|z) instead of showing the mean of p(x|z)")
    p.add_argument("--by-component", action="store_true",
                   help="Figure 3: inputs per mixture component and samples conditioned on their top k layers")
    p.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)),
                   help="with --by-component: the k of each row, comma-separated (default 1,2,4,6,8,10; "
                        "values above the number of latent layers are dropped)")
    p.add_argument("--per-component", type=cli.at_least(1), default=3, help="with --by-component: columns per component")
    p.add_argument("--max-components", type=cli.at_least(1), default=20,
                   help="with --by-component: show at most this many components, the most populated first")
    p.add_argument("--limit", type=cli.at_least(0, "0: all"), default=2000,
                   help="with --by-component: validation images to assign to components (0: all)")
    p.add_argument("--data-dir", help="with --by-component: where the data set is (default: the checkpoint's)")
    p.add_argument("--json", help="with --by-component: also write what the grid shows as JSON")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    from .folders import checkpoint_argument
    from .outputs import check_outputs, write_json
    from .validate import validate
    if args.json is not None and not args.by_component:
        raise ConfigError("--json is written with --by-component only; drop --json or add --by-component")
    # The outputs are checked before the checkpoint is read and anything is drawn.
    args.out, args.json = check_outputs(("--out", args.out, True), ("--json", args.json, False))
    device = resolve_device(args.device)
    model, cfg, _ = load_checkpoint(checkpoint_argument(args.checkpoint), device)
    torch.manual_seed(args.seed)
    if args.by_component:
        try:
            ks = [int(k) for k in args.ks.split(",") if k.strip()]
        except ValueError:
            raise ConfigError(f"--ks {args.ks!r}: give comma-separated integers, e.g. 1,2,4") from None
        ks = [k for k in ks if k <= model.num_layers] or [model.num_layers]
        if args.data_dir:
            cfg = cfg.override("data.data_dir", args.data_dir)
        validate(cfg, training=False)
        r = by_component(model, cfg, args.out, ks, args.per_component, args.max_components, args.limit)
        print(f"wrote {r['path']}: {len(r['shown'])} components x {args.per_component} inputs, rows k = "
              f"{', '.join(map(str, ks))} (of {model.num_layers} latent layers), "
              f"from {r['n_images']} validation images")
        print(f"{'component':>10} {'assigned':>9} {'resp.':>7}")
        for s in r["shown"]:
            print(f"{s['component']:>10} {s['n_assigned']:>9} {s['mean_responsibility']:>7.3f}")
        if args.json:
            write_json(args.json, r)
        return 0
    images = model.sample(args.n, mean=not args.draw)
    path = save_grid(images, args.out)
    how = "draws" if args.draw else "means"
    if model.ar_head is not None:
        how += " (drawn pixel by pixel by the autoregressive head)"
    print(f"wrote {path} ({args.n} samples, {how} of p(x|z))")
    return 0


if __name__ == "__main__":
    cli.run(main, memory_hint="lower --n (images drawn at once), or sample on a device with more memory")
