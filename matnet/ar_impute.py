"""Imputation with a checkpoint that has the local autoregressive head (section 2.3): p(x | z) is a
PixelCNN over the pixels in raster order, so it does not factorise over pixels and x_u cannot be
drawn given z directly. Two exact pieces replace that draw, both from one network pass of the head:

- x_u given z, a Metropolis-Hastings step (Metropolis et al. 1953; Hastings 1970): the proposal r
  draws the unknown pixels in raster order from the head's own conditionals, with the known pixels
  clamped to their values where the order reaches them (the window-wise sampler of pixelcnn.py). The
  target is p(x_u | x_k, z), proportional to p(x_k, x_u | z) = prod over all pixels of p(x_ij | x_<ij, z),
  and r(x_u) is the same product over the unknown pixels only; their ratio is the product over the
  KNOWN pixels of p(x_ij | x_<ij, z) under the proposed x_u. The acceptance probability is therefore
  min(1, prod_known p(x_k | x'_<, z) / prod_known p(x_k | x_<, z)), two passes of the head.
- z given x: as for any checkpoint (gibbs.py's mwg), q(z | x) as an independence proposal for
  p(z | x), accepted on the importance weights (the head's whole-image likelihood).
Together they are a Metropolis-within-Gibbs chain whose stationary law is p(z, x_u | x_k).

log p(x_u | x_k) = log p(x) - log p(x_k): log p(x) by the IWAE bound as usual; p(x_k) by importance
sampling over (z, x_u) jointly, z ~ q(z | x) and x_u ~ r(x_u | x_k, z) as above, with weights
p(z) p(x_k, x_u | z) / (q(z | x) r(x_u)) = [p(z) / q(z | x)] prod_known p(x_k | x_<, z), unbiased for
p(x_k), so its log-mean is a stochastic lower bound of log p(x_k) (as gibbs.py's, an estimate, not a
bound, of the difference).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from . import distributions as D
from .model import MatNet
from .objectives import iwae_bound


def known_log_lik(model: Any, td_out: torch.Tensor, x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """sum over the known pixels of log p(x_ij | x_<ij, z), per example: one pass of the head."""
    params = model.ar_head(td_out, D.network_input(model.cfg.likelihood, x))
    return D.log_prob(model.cfg.likelihood, params, x, known.to(x.dtype))


@torch.no_grad()
def clamped_draw(model: Any, td_out: torch.Tensor, x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """x_u ~ r(x_u | x_k, z): the unknown pixels drawn in raster order (channel by channel) from the
    head's conditionals, the known pixels kept where the order reaches them."""
    head, lik = model.ar_head, model.cfg.likelihood
    b, c, h, w = x.shape
    out = x.clone()
    x_in = D.network_input(lik, out)
    conds = head.conditioning(td_out)
    unknown = ~known.bool().view(b, h, w)
    for i in range(h):
        for j in range(w):
            todo = unknown[:, i, j]
            if not todo.any():
                continue
            for k in range(c):
                p = head.pixel_params(td_out, x_in, i, j, conds)[:, k::c].float().view(b, -1, 1, 1)
                drawn = D.sample(lik, p).view(b)
                out[:, k, i, j] = torch.where(todo, drawn, out[:, k, i, j])
                x_in[:, k, i, j] = D.network_input(lik, out[:, k, i, j])
    return out


@torch.no_grad()
def update_unknown(model: Any, td_out: torch.Tensor, state: torch.Tensor, known: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One Metropolis-Hastings step for x_u given z (module docstring): (the new state, which rows
    accepted). Its stationary law is p(x_u | x_k, z)."""
    candidate = clamped_draw(model, td_out, state, known)        # x_u' ~ r(x_u | x_k, z)
    log_a = known_log_lik(model, td_out, candidate, known) - known_log_lik(model, td_out, state, known)
    take = torch.rand_like(log_a).log() < log_a
    return torch.where(take.view(-1, 1, 1, 1), candidate, state), take


@torch.no_grad()
def known_log_weight(model: Any, td_out: torch.Tensor, x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """log [p(x_k, x_u | z) / r(x_u | x_k, z)] for one x_u ~ r: unbiased for p(x_k | z) once exponentiated."""
    return known_log_lik(model, td_out, clamped_draw(model, td_out, x * known, known), known)


@torch.no_grad()
def run_chains(model: MatNet, x: torch.Tensor, known: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                          float]:
    """One chain per row of x, `steps` updates of (z, then x_u). Returns the imputation shown (the mean
    of each unknown pixel's conditional at the last state, known pixels kept), the last state (a draw),
    and the acceptance rate of the x_u proposals."""
    lik = model.cfg.likelihood
    known = known.to(x.dtype)
    state = x * known + model.sample(x.shape[0], mean=False) * (1.0 - known)
    z, accepted = None, 0.0
    for _ in range(steps):
        proposal = model(state)                                   # z' ~ q(z | x), w(z') under this x
        if z is None:
            z = proposal.latents
        else:
            current = model(state, latents=z)
            take = torch.rand_like(proposal.log_weight).log() < proposal.log_weight - current.log_weight
            z = [torch.where(take.view(-1, *[1] * (a.dim() - 1)), a, b) for a, b in zip(proposal.latents, z)]
        state, take = update_unknown(model, model.decode(state, z), state, known)
        accepted += take.float().mean().item() / steps
    params = model.ar_head(model.decode(state, z), D.network_input(lik, state))
    return state * known + D.mean_image(lik, params) * (1.0 - known), state, accepted


@torch.no_grad()
def unknown_log_likelihood(model: MatNet, x: torch.Tensor, known: torch.Tensor, k: int,
                           rows_per_pass: int = 1000) -> torch.Tensor:
    """Estimate of log p(x_u | x_k) per image [B] (module docstring), k importance samples each."""
    log_px = iwae_bound(model, x, k, rows_per_pass).iwae.double()
    known = known.to(x.dtype)
    b = x.shape[0]
    per_pass = max(1, rows_per_pass // b)
    weights = []
    for start in range(0, k, per_pass):
        n = min(per_pass, k - start)
        xs, ks = x.repeat(n, 1, 1, 1), known.repeat(n, 1, 1, 1)  # row r is image r % b
        out = model(xs)                                          # z ~ q(z | x), log p(z) - log q(z | x)
        td_out = model.decode(xs, out.latents)
        weights.append((out.log_ratio + known_log_weight(model, td_out, xs, ks)).double().view(n, b))
    log_w = torch.cat(weights, 0)
    log_pk = torch.logsumexp(log_w, 0) - math.log(k)
    return log_px - log_pk
