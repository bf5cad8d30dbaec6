"""Distributions: diagonal Gaussians for the latents, and the likelihoods p(x|z) for the pixels.

Every log-density here is summed over the event dimensions and returned per example, in nats.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, exp(logvar)), summed over all but the batch axis."""
    lp = -0.5 * (LOG_2PI + logvar + (z - mean) ** 2 * torch.exp(-logvar))
    return lp.flatten(1).sum(1)


def gaussian_kl(mean_q: torch.Tensor, logvar_q: torch.Tensor,
                mean_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """Analytic KL( N(mean_q, var_q) || N(mean_p, var_p) ) of diagonal Gaussians, summed over the
    latent units of one layer (the KL_i of the per-layer terms under equation 5)."""
    kl = 0.5 * (logvar_p - logvar_q
                + (torch.exp(logvar_q) + (mean_q - mean_p) ** 2) * torch.exp(-logvar_p) - 1.0)
    return kl.flatten(1).sum(1)


def sample_gaussian(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Reparametrized draw (Kingma & Welling): the gradient flows to mean and logvar."""
    return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


# ---------------------------------------------------------------------------------------------
# Likelihoods p(x | z). `params` come from the TD network's output convolution; `x` is the data as
# the data module hands it over: {0, 1} for binary images, 0..255 (as float) for 8-bit images.
# ---------------------------------------------------------------------------------------------

LIKELIHOODS = ("bernoulli", "gaussian", "logistic")


def check_data_fits(likelihood: str, binarize: str) -> None:
    """Binary images need the Bernoulli; 8-bit images (binarize "none") a likelihood over 0..255.
    A mismatch would train on nonsense and report meaningless nats and bits per dimension."""
    from .config import ConfigError
    if (likelihood == "bernoulli") != (binarize != "none"):
        want = "data.binarize=dynamic or fixed" if likelihood == "bernoulli" else "data.binarize=none"
        raise ConfigError(f"model.likelihood={likelihood!r} does not fit data.binarize={binarize!r}: use {want}, "
                          f"or model.likelihood={'bernoulli' if binarize != 'none' else 'logistic or gaussian'}")


def param_channels(likelihood: str, channels: int) -> int:
    """How many output channels the TD network's last convolution must produce."""
    return channels if likelihood == "bernoulli" else 2 * channels


def network_input(likelihood: str, x: torch.Tensor) -> torch.Tensor:
    """Data as the networks take it: binary images as they are, 8-bit values mapped to [-1, 1]."""
    return x if likelihood == "bernoulli" else x / 127.5 - 1.0


def pixel_sum(lp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel log-probabilities [B, C, H, W] summed per example; with a mask ([B, 1, H, W] or
    [B, C, H, W], 1 = count) only over the pixels it selects: pixels are independent given z, so this
    is the log-likelihood of those pixels alone (the unknown ones of eq. 6, or the known ones)."""
    return (lp if mask is None else lp * mask.to(lp.dtype)).flatten(1).sum(1)


def counted(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | int:
    """How many values of each example the mask selects (all of them without a mask)."""
    return x[0].numel() if mask is None else mask.to(x.dtype).expand_as(x).flatten(1).sum(1)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return pixel_sum(-F.binary_cross_entropy_with_logits(logits, x, reduction="none"), mask)


def gaussian_dequantized_log_prob(params: torch.Tensor, x: torch.Tensor,
                                  noise: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian density of dequantised pixels y = (x + u) / 256, u ~ U(0, 1), with the density
    measured on the integer grid (a width-1 bin per value), so the result is a lower bound on the
    discrete log-probability (Theis et al.): log P(x) >= E_u log p(y) - D log 256."""
    mean, log_scale = params.chunk(2, dim=1)
    log_scale = log_scale.clamp(min=-9.0)
    u = torch.rand_like(x) if noise is None else noise
    y = (x + u) / 256.0
    lp = -0.5 * LOG_2PI - log_scale - 0.5 * ((y - mean) * torch.exp(-log_scale)) ** 2
    return pixel_sum(lp, mask) - math.log(256.0) * counted(x, mask)


def discretized_logistic_log_prob(params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The 'integrated' logistic of Kingma et al. (IAF): P(x) is the logistic's mass over the bin
    [x - 0.5, x + 0.5] of the 8-bit value x, with the two end bins stretched to +-infinity so that the
    256 values of a pixel sum to one. Pixels are mapped to [-1, 1], bins are 2/255 wide."""
    mean, log_scale = params.chunk(2, dim=1)
    log_scale = log_scale.clamp(min=-7.0)
    xc = x / 127.5 - 1.0
    inv_s = torch.exp(-log_scale)
    plus = inv_s * (xc + 1.0 / 255.0 - mean)
    minus = inv_s * (xc - 1.0 / 255.0 - mean)
    # log sigmoid(plus) for the lowest bin (x = 0): all mass below its upper edge.
    log_cdf_plus = F.logsigmoid(plus)
    # log (1 - sigmoid(minus)) for the highest bin (x = 255).
    log_one_minus_cdf_minus = -F.softplus(minus)
    # Interior bins: log(sigmoid(plus) - sigmoid(minus)), computed stably as
    # log sigmoid(plus) + log(1 - exp(log sigmoid(minus) - log sigmoid(plus))).
    log_cdf_minus = F.logsigmoid(minus)
    diff = (log_cdf_minus - log_cdf_plus).clamp(max=-1e-6)
    log_mid = log_cdf_plus + torch.log(-torch.expm1(diff))
    # Where the bin is so narrow relative to the scale that the subtraction underflows, use the
    # density at the bin centre times the bin width.
    centre = inv_s * (xc - mean)
    log_pdf_mid = centre - log_scale - 2.0 * F.softplus(centre) + math.log(2.0 / 255.0)
    log_mid = torch.where(diff > -1e-5, log_pdf_mid, log_mid)
    lp = torch.where(x < 0.5, log_cdf_plus, torch.where(x > 254.5, log_one_minus_cdf_minus, log_mid))
    return pixel_sum(lp, mask)


def log_prob(likelihood: str, params: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x | z) per example, in nats (for 'gaussian', the dequantisation bound); with a mask, of
    the pixels it selects only (see pixel_sum)."""
    params = params.float()  # keep likelihoods in fp32 under bf16 autocast
    if likelihood == "bernoulli":
        return bernoulli_log_prob(params, x, mask)
    if likelihood == "gaussian":
        return gaussian_dequantized_log_prob(params, x, mask=mask)
    if likelihood == "logistic":
        return discretized_logistic_log_prob(params, x, mask)
    raise ValueError(f"unknown likelihood {likelihood!r}; use one of {', '.join(LIKELIHOODS)}")


def mean_image(likelihood: str, params: torch.Tensor) -> torch.Tensor:
    """The image to show for p(x|z): probabilities for Bernoulli, else the mean as 0..255."""
    params = params.float()
    if likelihood == "bernoulli":
        return torch.sigmoid(params)
    mean = params.chunk(2, dim=1)[0]
    if likelihood == "gaussian":
        return (mean * 256.0 - 0.5).clamp(0, 255)
    return ((mean + 1.0) * 127.5).clamp(0, 255)


def sample(likelihood: str, params: torch.Tensor) -> torch.Tensor:
    """Draw x ~ p(x|z), in the data's own units ({0,1} or 0..255)."""
    params = params.float()
    if likelihood == "bernoulli":
        return torch.bernoulli(torch.sigmoid(params))
    mean, log_scale = params.chunk(2, dim=1)
    if likelihood == "gaussian":
        y = mean + torch.exp(log_scale.clamp(min=-9.0)) * torch.randn_like(mean)
        return (y * 256.0).floor().clamp(0, 255)
    u = torch.rand_like(mean).clamp(1e-5, 1 - 1e-5)
    y = mean + torch.exp(log_scale.clamp(min=-7.0)) * (torch.log(u) - torch.log1p(-u))
    return ((y + 1.0) * 127.5).round().clamp(0, 255)
