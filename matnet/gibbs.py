"""Imputation with an UNCONDITIONAL MatNet (any checkpoint of data.task=generate, such as a search's
best/): Markov chains over the unknown pixels that keep the known ones clamped, and an
importance-sampling estimate of log p(x_u | x_k).

Two chains (Rezende et al. 2014; Mattei & Frellsen 2018, "Leveraging the exact likelihood of deep
latent variable models"):

  pseudo-gibbs   repeat: z ~ q(z | x), x_u ~ p(x_u | z). Simple, but q is only an approximation of
                 p(z | x), so the chain's stationary law is not exactly p(x_u | x_k).
  mwg            Metropolis-within-Gibbs: q(z | x) becomes an independence proposal for p(z | x),
                 accepted with probability min(1, w(z') / w(z)), w(z) = p(x | z) p(z) / q(z | x) (both
                 scored under the current x); then x_u ~ p(x_u | z). Its stationary law is p(z, x_u | x_k).

Chains start with the unknown pixels taken from a sample of the model. The imputation shown is the
mean of p(x_u | z) at the chain's last state.

log p(x_u | x_k) = log p(x) - log p(x_k), both estimated by importance sampling with the IWAE
estimator (Burda et al.), each with k samples from the encoder q(z | x): log p(x) as usual; log p(x_k)
with a likelihood that counts only the known pixels (a Bernoulli, or any per-pixel likelihood,
factorises over pixels given z, so p(x_k | z) is the product over the known ones). Any proposal gives
an unbiased estimate of p(x_k); q(z | x) gave the tightest of those tried (proposals q(z | x_k, x_u^m)
from the chains' completions came out some 4 nats looser on MNIST). Each term is a stochastic LOWER
bound of its log-likelihood, so their difference is an estimate, not a bound either way. In practice
the log p(x_k) term converges more slowly, so at small k the estimate of -log p(x_u | x_k) runs LOW
(optimistic): on a 6-minute MNIST model, 2 quadrants visible, 20 images, it rose from 32.0 (k=100) to
33.6 (k=1000) and 34.4 nats (k=4000). Compare it with a conditional model's IWAE bound accordingly.
"""
from __future__ import annotations

import torch

from . import distributions as D
from .config import ConfigError
from .model import MatNet
from .objectives import iwae_bound

METHODS: tuple[str, ...] = ("mwg", "pseudo-gibbs")
METHOD_NAMES = {"mwg": "Metropolis-within-Gibbs (Mattei & Frellsen 2018) over an unconditional MatNet",
                "pseudo-gibbs": "pseudo-Gibbs (Rezende et al. 2014) over an unconditional MatNet"}
AR_METHOD_NAME = ("Metropolis-within-Gibbs over an unconditional MatNet with the autoregressive head: x_u "
                  "proposed pixel by pixel from the head with x_k clamped, accepted on the known pixels' "
                  "likelihood (ar_impute.py)")


def method_name(model: MatNet, method: str) -> str:
    return AR_METHOD_NAME if model.ar_head is not None else METHOD_NAMES[method]


def _check(model: MatNet, method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"method {method!r}: use one of {', '.join(METHODS)}")
    if model.ar_head is not None and method != "mwg":
        raise ConfigError("this checkpoint has the autoregressive head: p(x | z) does not factorise over pixels, so "
                          "pseudo-Gibbs cannot draw x_u given z; use --method mwg (exact for it: ar_impute.py)")


def _clamp(x: torch.Tensor, known: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    known = known.to(x.dtype)
    return x * known + pixels * (1.0 - known)


@torch.no_grad()
def run_chains(model: MatNet, x: torch.Tensor, known: torch.Tensor, steps: int,
               method: str = "mwg") -> tuple[torch.Tensor, torch.Tensor, float]:
    """One chain per row of x (repeat rows for several chains per image), `steps` updates each.
    Returns the mean imputation of the last state (known pixels kept), the last state itself (a
    draw: x_k with x_u ~ p(x_u | z)), and the fraction of accepted proposals (1.0 for pseudo-Gibbs)."""
    _check(model, method)
    if steps < 1:
        raise ConfigError(f"--gibbs-steps must be >= 1, got {steps}")
    if model.ar_head is not None:
        from .ar_impute import run_chains as ar_chains
        return ar_chains(model, x, known, steps)
    lik = model.cfg.likelihood
    state = _clamp(x, known, model.sample(x.shape[0], mean=False))
    z, params, accepted = None, None, 0.0
    for _ in range(steps):
        proposal = model(state)                                   # z' ~ q(z | x), w(z') under this x
        if method == "pseudo-gibbs" or z is None:
            z, params = proposal.latents, proposal.params
        else:
            current = model(state, latents=z)                     # w(z) rescored under the new x
            accept = torch.rand_like(proposal.log_weight).log() < proposal.log_weight - current.log_weight
            z = [torch.where(accept.view(-1, *[1] * (a.dim() - 1)), a, b) for a, b in zip(proposal.latents, z)]
            params = torch.where(accept.view(-1, 1, 1, 1), proposal.params, current.params)
            accepted += accept.float().mean().item() / (steps - 1)
        state = _clamp(x, known, D.sample(lik, params))          # x_u ~ p(x_u | z)
    if method == "pseudo-gibbs" or steps == 1:
        accepted = 1.0
    return _clamp(x, known, D.mean_image(lik, params)), state, accepted


@torch.no_grad()
def unknown_log_likelihood(model: MatNet, x: torch.Tensor, known: torch.Tensor, k: int,
                           rows_per_pass: int = 1000) -> torch.Tensor:
    """Estimate of log p(x_u | x_k) per image [B] = IWAE_k log p(x) - IWAE_k log p(x_k), the second with
    the known-pixel likelihood (module docstring)."""
    _check(model, METHODS[0])
    if model.ar_head is not None:
        from .ar_impute import unknown_log_likelihood as ar_unknown
        return ar_unknown(model, x, known, k, rows_per_pass)
    log_px = iwae_bound(model, x, k, rows_per_pass).iwae
    log_pk = iwae_bound(model, x, k, rows_per_pass, likelihood_mask=known.to(x.dtype)).iwae
    return log_px.double() - log_pk.double()
