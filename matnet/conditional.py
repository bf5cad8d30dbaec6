"""The conditional MatNet (section 2.1, eqs. 3, 4 and 6): imputation of unknown pixels x_u given the
known ones x_k.

One top-down network is shared by two sets of bottom-up + merge modules (networks.BUMergeNetwork):

  generator  sees x_k only: unknown pixels filled with the data mean, and the mask as an extra input
             channel. Its last BU state gives p(z_0 | x_k); its merge modules give p(z_i | z_<i, x_k)
             (eq. 3). It never sees x_u, so nothing of p(.) depends on x_u (tests/test_impute_model.py).
  inference  sees the same input and x itself, unknown pixels included: q(z | x_k, x_u) (eq. 4).

The bound of eq. 6 counts only the unknown pixels in log p(x_u | z, x_k): pixels are independent given
z, so the known ones just drop out of the sum (distributions.pixel_sum). Every KL is between two
Gaussians (posterior and conditional prior); z_0 included. A model built by build.build_model also
carries `masks`, the mask maker of its training data, so code holding only the checkpoint scores it
on the same kind of masks.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import distributions as D
from .config import ConfigError
from .sections import ModelConfig
from .model import MatNetOutput, validate_layout
from .networks import BUMergeNetwork, LatentLayers, MergePath, TopDownNetwork, bottom_up, descend


def validate_conditional(cfg: ModelConfig) -> None:
    """The extensions that a conditional MatNet does not have, as one-line errors."""
    if cfg.mixture_components > 0:
        raise ConfigError("model.mixture_components > 0 with data.task=impute: a conditional MatNet's z_0 prior is "
                          "p(z_0 | x_k) from its generator, not a mixture; set model.mixture_components=0")
    if cfg.ar_layers > 0:
        raise ConfigError("model.ar_layers > 0 with data.task=impute: the autoregressive head is not supported "
                          "by conditional MatNets; set model.ar_layers=0")


class ConditionalMatNet(LatentLayers, nn.Module):
    conditional = True

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        validate_layout(cfg, image_shape)
        validate_conditional(cfg)
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        c = image_shape[0]
        # The TD modules have no eq. 8 prior of their own: the generator's merge modules give it.
        self.td = TopDownNetwork(cfg, image_shape, own_prior=False)
        # Generator input: [x_k with x_u filled; mask]. Inference input: that, and x itself.
        self.generator = BUMergeNetwork(cfg, image_shape, in_channels=c + 1)
        self.inference = BUMergeNetwork(cfg, image_shape, in_channels=2 * c + 1)
        # The fill of unknown pixels, per channel, in data units: the training data's mean, set by
        # set_data_mean before training and saved with the weights.
        self.register_buffer("data_mean", torch.full((c,), 0.5 if cfg.likelihood == "bernoulli" else 127.5))
        self.masks = None  # the mask maker of the training data (build.build_model sets it)

    @property
    def metas(self) -> nn.ModuleList:
        """The meta modules that hold the latent layers' merge modules (for LatentLayers)."""
        return self.inference.metas

    def set_data_mean(self, images: torch.Tensor) -> None:
        """images: uint8 [N, C, H, W] as a Split stores them (0..255, or 0/1 when fixed-binarized)."""
        mean = images.float().mean((0, 2, 3))
        if self.cfg.likelihood == "bernoulli" and images.max() > 1:
            mean = mean / 255.0  # dynamic binarization: the mean of the Bernoulli draws
        self.data_mean.copy_(mean.to(self.data_mean))

    # ---- inputs --------------------------------------------------------------------------------
    def filled(self, x: torch.Tensor, known: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
        """x_k with every unknown pixel replaced by `fill` (default: the data mean). Only this, never
        x at an unknown pixel, reaches the generator."""
        known = known.to(x.dtype)
        fill = self.data_mean.view(1, -1, 1, 1).to(x.dtype) if fill is None else fill.to(x.dtype)
        return x * known + fill * (1.0 - known)

    def generator_input(self, x, known, fill=None) -> torch.Tensor:
        lik = self.cfg.likelihood
        return torch.cat([D.network_input(lik, self.filled(x, known, fill)), known.to(x.dtype)], 1)

    def inference_input(self, x, known, fill=None) -> torch.Tensor:
        return torch.cat([self.generator_input(x, known, fill), D.network_input(self.cfg.likelihood, x)], 1)

    # ---- the model -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, known: torch.Tensor, fill: torch.Tensor | None = None,
                latents: list[torch.Tensor] | None = None) -> MatNetOutput:
        """The terms of eq. 6 for a batch: log p(x_u | z, x_k) over the unknown pixels, the KL of every
        latent layer between q(z_i | z_<i, x_k, x_u) and p(z_i | z_<i, x_k). known: [B, 1, H, W], 1 (or
        True) where the pixel is known. `fill`: what the networks see at unknown pixels instead of the
        data mean (the two-stage model's second stage sees the first stage's guess)."""
        known = known.to(x.dtype)
        generator = MergePath(self.generator, bottom_up(self.generator, self.generator_input(x, known, fill)))
        posterior = MergePath(self.inference, bottom_up(self.inference, self.inference_input(x, known, fill)))
        p_mean, p_logvar = generator.top()                                   # p(z_0 | x_k)
        q_mean, q_logvar = posterior.top()                                   # q(z_0 | x_k, x_u)
        z0 = latents[0] if latents is not None else D.sample_gaussian(q_mean, q_logvar)
        kls = [D.gaussian_kl(q_mean, q_logvar, p_mean, p_logvar)]
        log_ratio = D.gaussian_log_prob(z0, p_mean, p_logvar) - D.gaussian_log_prob(z0, q_mean, q_logvar)
        td_out, kls, log_ratio, used = descend(self.td, z0, self.num_layers, generator, posterior, kls,
                                               log_ratio, latents)
        params = td_out.view(x.shape[0], -1, *self.image_shape[1:])
        log_px = D.log_prob(self.cfg.likelihood, params, x, 1.0 - known)   # eq. 6: unknown pixels only
        return MatNetOutput(log_px, torch.stack(kls, 1), log_ratio, params, None, used)

    @torch.no_grad()
    def generate(self, x: torch.Tensor, known: torch.Tensor, fill: torch.Tensor | None = None,
                 latents: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Likelihood parameters of p(x_u | z, x_k) for z drawn from p(z | x_k) (eq. 3): the generator
        alone, given x_k (and the fill)."""
        known = known.to(x.dtype)
        generator = MergePath(self.generator, bottom_up(self.generator, self.generator_input(x, known, fill)))
        mean0, logvar0 = generator.top()
        z0 = latents[0] if latents is not None else D.sample_gaussian(mean0, logvar0)
        td_out = descend(self.td, z0, 0, generator, None, [], 0.0, latents)[0]
        return td_out.view(x.shape[0], -1, *self.image_shape[1:])

    @torch.no_grad()
    def impute(self, x: torch.Tensor, known: torch.Tensor, mean: bool = True,
               fill: torch.Tensor | None = None) -> torch.Tensor:
        """One imputation per image: known pixels kept, unknown ones from p(x_u | z, x_k) with z ~ p(z | x_k),
        as the mean of p(x_u | z, x_k) (default) or a draw from it."""
        params = self.generate(x, known, fill)
        lik = self.cfg.likelihood
        pixels = D.mean_image(lik, params) if mean else D.sample(lik, params)
        return self.filled(x, known, pixels)

    def prior_top(self, x: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z_0 | x_k): mean and log-variance."""
        known = known.to(x.dtype)
        return self.generator.top_posterior(bottom_up(self.generator, self.generator_input(x, known))[1])

    def sample(self, n: int, mean: bool = True) -> torch.Tensor:
        raise ConfigError("this checkpoint is a conditional MatNet (data.task=impute): it draws unknown pixels given "
                          "known ones; use python -m matnet.impute CKPT")
