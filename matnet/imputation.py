"""Imputing unknown pixels with any checkpoint, and scoring the imputations: a conditional MatNet
(data.task=impute) draws z ~ p(z | x_k) and x_u from p(x_u | z, x_k) (eq. 3); an unconditional one runs
a Markov chain that clamps the known pixels (gibbs.py). The command is impute.py; training's figures
(figures.py) draw a grid with `imputation_figure`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .build import is_conditional
from .config import Config
from .data import load_split
from .gibbs import run_chains, unknown_log_likelihood
from .masks import fixed_masks, mask_maker
from .objectives import iwae_bound
from .plots import save_grid


def _intensity(x: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Pixel values on a [0, 1] scale (binary images already are)."""
    return x if likelihood == "bernoulli" else x / 255.0


@torch.no_grad()
def draw_imputations(model, x: torch.Tensor, known: torch.Tensor, samples: int, method: str,
                     steps: int) -> tuple[torch.Tensor, float | None]:
    """`samples` mean imputations per image [B, M, C, H, W] (known pixels kept), and the chains'
    acceptance rate (None for a conditional model, which draws z from p(z | x_k) directly)."""
    if is_conditional(model):
        return torch.stack([model.impute(x, known, mean=True) for _ in range(samples)], 1), None
    rep_x, rep_known = x.repeat_interleave(samples, 0), known.repeat_interleave(samples, 0)
    means, _, acceptance = run_chains(model, rep_x, rep_known, steps, method)
    return means.view(x.shape[0], samples, *x.shape[1:]), acceptance


@torch.no_grad()
def impute_batch(model, x: torch.Tensor, known: torch.Tensor, samples: int, k: int, rows: int,
                 method: str, steps: int) -> dict[str, Any]:
    """For a batch: `samples` mean imputations per image [B, M, C, H, W], the NLL of the unknown pixels
    per image [B], and (unconditional models) the chains' acceptance rate."""
    # The order of the random draws is the one README's table was measured with.
    if is_conditional(model):
        nll = -iwae_bound(model, x, k, rows, known=known).iwae.double()
        imputations, acceptance = draw_imputations(model, x, known, samples, method, steps)
    else:
        imputations, acceptance = draw_imputations(model, x, known, samples, method, steps)
        nll = -unknown_log_likelihood(model, x, known, k, rows)
    return {"imputations": imputations, "nll": nll, "acceptance": acceptance}


def score(model, x_all: torch.Tensor, known_all: torch.Tensor, samples: int, k: int, batch_size: int,
          rows: int, method: str, steps: int, device: torch.device, progress: bool, desc: str) -> dict[str, Any]:
    """NLL (nats per image) and MSE of the mean imputation over all images, for one set of masks."""
    lik = model.cfg.likelihood
    nll, sq_err, unknown_values, acc = [], 0.0, 0.0, []
    n = x_all.shape[0]
    bar = tqdm(total=n, disable=not progress, unit="image", desc=desc, dynamic_ncols=True)
    for start in range(0, n, batch_size):
        x = x_all[start:start + batch_size].to(device)
        known = known_all[start:start + batch_size].to(device)
        r = impute_batch(model, x, known, samples, k, rows, method, steps)
        unknown = (~known).to(x.dtype).expand_as(x)
        mean_imputation = r["imputations"].mean(1)
        sq_err += (((_intensity(mean_imputation, lik) - _intensity(x, lik)) ** 2) * unknown).sum().item()
        unknown_values += unknown.sum().item()
        nll.append(r["nll"].cpu())
        if r["acceptance"] is not None:
            acc.append(r["acceptance"])
        bar.update(x.shape[0])
    bar.close()
    nll_t = torch.cat(nll)
    out = {"nll_nats": nll_t.mean().item(),
           "nll_stderr": nll_t.std().item() / math.sqrt(n) if n > 1 else 0.0,
           "mse": sq_err / max(unknown_values, 1.0),
           "unknown_pixels": unknown_values / n / x_all.shape[1]}
    if acc:
        out["acceptance"] = sum(acc) / len(acc)
    if lik != "bernoulli":  # bits per unknown dimension
        out["bpd"] = out["nll_nats"] / (max(unknown_values / n, 1.0) * math.log(2.0))
    return out


@torch.no_grad()
def grid_rows(model, x: torch.Tensor, known: torch.Tensor, samples: int, method: str, steps: int) -> torch.Tensor:
    """[G * (2 + M), C, H, W] on a [0, 1] scale: per image the original, the masked input (unknown pixels
    gray) and M imputations."""
    lik = model.cfg.likelihood
    imps = draw_imputations(model, x, known, samples, method, steps)[0]
    kf = known.to(x.dtype)
    masked = _intensity(x, lik) * kf + 0.5 * (1.0 - kf)
    rows = torch.cat([_intensity(x, lik)[:, None], masked[:, None], _intensity(imps, lik)], 1)
    return rows.flatten(0, 1).clamp(0, 1).cpu()


def imputation_figure(model, config: Config, path: str | Path, n_images: int = 8, samples: int = 6,
                      split: str = "valid", seed: int = 0, steps: int = 20) -> Path:
    """A grid of imputations for the first images of a split of the checkpoint's own data set, under its
    own masks (for a conditional model) or data.mask: the picture to show for a conditional checkpoint,
    whose `sample` has nothing to condition on."""
    device = next(model.parameters()).device
    data = load_split(config.data, split)
    g = min(n_images, len(data))
    x = data.batch(torch.arange(g), torch.Generator().manual_seed(seed)).to(device)
    maker = getattr(model, "masks", None) or mask_maker(config.data, tuple(model.image_shape))
    known = fixed_masks(maker, g, seed).to(device)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        pictures = grid_rows(model, x, known, samples, "mwg", steps)
    return save_grid(pictures, path, nrow=2 + samples)
