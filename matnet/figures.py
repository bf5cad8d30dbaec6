"""The figures that show a checkpoint at a glance: samples (means of p(x|z)) for a generative
MatNet, or imputations for a conditional one (it has nothing to sample without images to
condition on), and the KL of every latent layer as JSON and a bar chart. A search logs them for
every trial and for its best checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from . import folders
from .build import build_model, is_conditional
from .checkpoint import load_checkpoint, read_config
from .device import seeded_rng
from .imputation import imputation_figure
from .outputs import write_json
from .plots import plot_kl_bars, plot_kl_per_layer, read_metrics, save_grid


def checkpoint_figures(checkpoint_dir: str | Path, out: Path, n_samples: int, title: str,
                       kl_per_layer: Sequence[float] | None = None) -> list[Path]:
    """Write into `out`: samples.png (n_samples images) or imputations.png, and kl_per_layer.json/.png
    (the given per-layer KL, else the one in the checkpoint's metrics). Returns the files written."""
    model, cfg, meta = load_checkpoint(checkpoint_dir, "cpu")
    files = []
    if n_samples > 0 and is_conditional(model):
        rows = max(1, min(8, n_samples // 6))
        files.append(imputation_figure(model, cfg, out / "imputations.png", n_images=rows, samples=6))
    elif n_samples > 0:
        with seeded_rng(0), torch.no_grad():
            images = model.sample(n_samples, mean=True)
        files.append(save_grid(images, out / "samples.png"))
    kl = kl_per_layer if kl_per_layer is not None else meta.get("metrics", {}).get("val_kl_per_layer")
    if kl:
        # "z<i> (scale)" for every latent layer, numbered here (coarse to fine, z0 the fc top).
        names = [f"z{i} ({n.split('(', 1)[1]}" if "(" in n else f"z{i}" for i, n in enumerate(model.layer_names())]
        write_json(out / "kl_per_layer.json",
                   {"kl_per_layer": list(kl), "layers": names, "step": meta.get("step"), "bound": "elbo"})
        files.append(out / "kl_per_layer.json")
        files.append(plot_kl_bars(kl, names, out / "kl_per_layer.png", title))
    return files


def history_figure(checkpoint_dir: str | Path, out: Path) -> Path | None:
    """Figure 4 (per-layer KL over training) from the history a checkpoint carries (metrics.jsonl, as
    a search's trials keep it: search/tune/trainable.py), drawn where the checkpoint is read instead
    of at every evaluation of the run. None when the checkpoint has no history."""
    history = Path(checkpoint_dir) / folders.RUN_METRICS
    if not history.is_file():
        return None
    config, meta = read_config(checkpoint_dir)
    model = build_model(config, tuple(meta["image_shape"]))
    return plot_kl_per_layer(read_metrics(history), model.layer_meta(), out, model.meta_labels())
