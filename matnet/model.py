"""The Matryoshka Network: a top-down generator, a bottom-up network and merge modules (Fig. 1).

Latent layers are numbered as in the paper: z_0 is the fully-connected top, then one layer per TD
module, coarse to fine. `forward(x)` runs inference (BU pass, then the stochastic TD pass guided by
the merge modules) and returns log p(x|z) and the KL of every latent layer separately.

Extensions (section 2.3), each off unless the config turns it on: a Gaussian mixture prior over z_0
(mixture.py), and a local autoregressive head on p(x|z) (pixelcnn.py). The inference regularizer of
equation 13 lives in objectives.py; `named_inference_parameters` / `named_generator_parameters` say
which parameters it may train.

The modules and the passes are built from the pieces in networks.py, which a conditional MatNet
(conditional.py) reuses for its second set of BU and merge modules.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from . import distributions as D
from .blocks import Up
from .config import ConfigError
from .sections import ModelConfig
from .mixture import MixturePrior, entropy
from .networks import (BUStates, LatentLayers, MergePath, TDPrior, bottom_up, build_metas, data_into_bu, descend,
                       down_connectors, td_out_of_finest, top_gaussian, up_connectors)
from .pixelcnn import PixelCNNHead


@dataclass
class MatNetOutput:
    log_px: torch.Tensor        # [B] log p(x | z), nats
    kl_per_layer: torch.Tensor  # [B, L] analytic KL(q(z_i|.) || p(z_i|.)), layer 0 = z_0
    log_ratio: torch.Tensor     # [B] sum_i log p(z_i|.) - log q(z_i|.) at the sampled z
    params: torch.Tensor        # likelihood parameters of p(x | z)
    # [B] loss terms that are not part of the bound (the mixture prior's weighted posterior-entropy
    # penalty); None when there are none.
    penalty: torch.Tensor | None = None
    # The latents used, one tensor per layer (z_0 first): pass them back as `latents=` to score them
    # under another input (Metropolis-within-Gibbs imputation, gibbs.py).
    latents: list[torch.Tensor] | None = None

    @property
    def elbo(self) -> torch.Tensor:
        """Equation 5 with the analytic per-layer KL, per example. With a mixture prior the KL of z_0
        is the approximation of equation 12, an upper bound on the exact KL (mixture.py): the ELBO
        is then still a lower bound, a little looser."""
        return self.log_px - self.kl_per_layer.sum(1)

    @property
    def log_weight(self) -> torch.Tensor:
        """log p(x, z) - log q(z | x) for the sampled z: one importance weight of the IWAE bound."""
        return self.log_px + self.log_ratio


def validate_layout(cfg: ModelConfig, image_shape: tuple[int, int, int]) -> None:
    """One-line errors for layouts that cannot be built, before any parameter is allocated."""
    _, h, w = image_shape
    if h != w:
        raise ConfigError(f"images must be square, got {h}x{w}")
    if cfg.likelihood not in D.LIKELIHOODS:
        raise ConfigError(f"model.likelihood={cfg.likelihood!r}: use one of {', '.join(D.LIKELIHOODS)}")
    if not cfg.meta_modules:
        raise ConfigError("model.meta_modules is empty: give at least one meta module")
    prev = None
    for k, mm in enumerate(cfg.meta_modules):
        where = f"model.meta_modules[{k}]"
        if mm.width < 1 or mm.modules < 1 or mm.latent_channels < 0:
            raise ConfigError(f"{where}: width and modules must be >= 1 and latent_channels >= 0 "
                              f"(0: deterministic modules), got {mm}")
        if mm.scale < 0 or mm.scale > h:
            raise ConfigError(f"{where}.scale={mm.scale}: must be 0 (fully connected) or 1..{h}")
        if mm.scale == 0 and k > 0:
            raise ConfigError(f"{where}.scale=0: only the first (coarsest) meta module may be fully connected")
        if mm.scale > 0 and h % mm.scale:
            raise ConfigError(f"{where}.scale={mm.scale}: must divide the image size {h}")
        if prev is not None and prev > 0 and (mm.scale <= prev or mm.scale % prev):
            raise ConfigError(f"{where}.scale={mm.scale}: scales must grow coarse to fine by whole factors "
                              f"(previous scale {prev})")
        prev = mm.scale
    if cfg.top_latents < 1 or cfg.data_width < 1:
        raise ConfigError("model.top_latents and model.data_width must be >= 1")
    if cfg.mixture_components < 0 or cfg.mixture_entropy_weight < 0:
        raise ConfigError(f"model.mixture_components ({cfg.mixture_components}) and model.mixture_entropy_weight "
                          f"({cfg.mixture_entropy_weight}) must be >= 0")
    if cfg.ar_layers < 0:
        raise ConfigError(f"model.ar_layers={cfg.ar_layers}: must be >= 0 (0: no autoregressive head)")
    if cfg.ar_layers > 0 and cfg.ar_channels < image_shape[0]:
        raise ConfigError(f"model.ar_channels={cfg.ar_channels}: the head needs at least one channel per "
                          f"colour ({image_shape[0]})")


class MatNet(LatentLayers, nn.Module):
    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        validate_layout(cfg, image_shape)
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        c, size, _ = image_shape
        leak = cfg.leak
        # The builders (networks.py) are called in this order so that parameter names, their order
        # (the optimizer state of a checkpoint) and their initialisation stay as they always were.
        self.metas = build_metas(cfg)
        first, last = self.metas[0], self.metas[-1]
        self.fc_only = last.scale == 0
        # Data into the BU network and out of the TD network (plain convolutions, section 2.2).
        self.data_in, self.bu_into_finest = data_into_bu(cfg, c, size, last)
        self.td_out_of_finest = td_out_of_finest(cfg, D.param_channels(cfg.likelihood, c), size, last)
        # Connectors between meta modules: BU goes fine -> coarse, TD and merge go coarse -> fine.
        self.bu_down = down_connectors(self.metas, leak)
        self.td_up = up_connectors(self.metas, leak)
        self.merge_up = up_connectors(self.metas, leak)
        # The top: BU module 0 gives q(z_0 | x); z_0 enters the TD network through a linear layer.
        self.top_posterior = top_gaussian(cfg, first)
        self.td_top = Up(cfg.top_latents, 0, first.width, first.scale, leak)
        # Extensions: p(z_0) as a trained Gaussian mixture; a PixelCNN head on p(x | z).
        self.top_prior = (MixturePrior(cfg.mixture_components, cfg.top_latents, cfg.mixture_learn_weights)
                          if cfg.mixture_components > 0 else None)
        self.ar_head = (PixelCNNHead(cfg.likelihood, c, cfg.ar_layers, cfg.ar_channels, leak)
                        if cfg.ar_layers > 0 else None)

    def generator_modules(self) -> list[nn.Module]:
        """The modules of p(x, z): the TD network, its connectors and output, the prior over z_0 and
        the autoregressive head. Everything else (BU and merge modules, their connectors, the data
        input, q(z_0 | x)) is the inference network."""
        mods: list[nn.Module] = [self.td_top, self.td_up, self.td_out_of_finest, *(m.td for m in self.metas)]
        return mods + [m for m in (self.top_prior, self.ar_head) if m is not None]

    def named_generator_parameters(self) -> list[tuple[str, nn.Parameter]]:
        ids = {id(p) for m in self.generator_modules() for p in m.parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) in ids]

    def named_inference_parameters(self) -> list[tuple[str, nn.Parameter]]:
        ids = {id(p) for m in self.generator_modules() for p in m.parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) not in ids]

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """Data scaled for the networks: {0,1} kept, 8-bit mapped to [-1, 1]."""
        return D.network_input(self.cfg.likelihood, x)

    # ---- the networks --------------------------------------------------------------------------
    def bottom_up(self, x: torch.Tensor) -> BUStates:
        """BU pass (eq. 9): per meta module, the BU states in TD order, and the final state that feeds
        BU module 0 (networks.bottom_up)."""
        return bottom_up(self, self._input(x))

    def _top_down(self, n: int, k: int, bu: BUStates | None = None, given: list[torch.Tensor] | None = None):
        """The stochastic TD pass (eqs. 7-8). Latent layers 0..k-1 (z_0 first) are drawn from the
        posterior, given by the merge modules (eqs. 10-11) from `bu` = bottom_up(x); layers k.. from
        the prior; `given` latents (z_0 first) replace the draws. Returns the TD output (the likelihood
        parameters, or the head's conditioning), the KL of every posterior layer, log p(z) - log q(z)
        over them, z_0's posterior over the mixture components (None without a mixture prior or when
        z_0 is drawn from the prior), and the latents used."""
        kls: list[torch.Tensor] = []
        log_ratio, resp = 0.0, None
        if k > 0:
            mean0, logvar0 = self.top_posterior(bu[1])
            z0 = given[0] if given is not None else D.sample_gaussian(mean0, logvar0)
            if self.top_prior is None:
                zeros = torch.zeros_like(mean0)
                kls.append(D.gaussian_kl(mean0, logvar0, zeros, zeros))
                log_p0 = D.gaussian_log_prob(z0, zeros, zeros)
            else:
                kl0, resp = self.top_prior.kl(mean0, logvar0)   # eq. 12: the reported KL of z_0
                kls.append(kl0)
                log_p0 = self.top_prior.log_prob(z0)            # exact: keeps IWAE a bound
            log_ratio = log_p0 - D.gaussian_log_prob(z0, mean0, logvar0)
        elif given is not None:
            z0 = given[0]
        elif self.top_prior is not None:
            z0 = self.top_prior.sample(n)
        else:
            z0 = torch.randn(n, self.cfg.top_latents, device=self.top_posterior.scale.device)
        posterior = MergePath(self, bu) if k > 0 else None
        td_out, kls, log_ratio, latents = descend(self, z0, k, TDPrior(self), posterior, kls, log_ratio, given)
        return td_out.view(n, -1, *self.image_shape[1:]), kls, log_ratio, resp, latents

    def forward(self, x: torch.Tensor, likelihood_mask: torch.Tensor | None = None,
                latents: list[torch.Tensor] | None = None) -> MatNetOutput:
        """Inference and the terms of eq. 5 for a batch x. `likelihood_mask` ([B, 1, H, W], 1 = count)
        restricts log p(x | z) to some pixels: with the known pixels it gives log p(x_k | z), which
        the Bernoulli (or any per-pixel) likelihood allows because pixels are independent given z.
        `latents` (z_0 first) are scored instead of drawn."""
        if likelihood_mask is not None and self.ar_head is not None:
            raise ConfigError("a model with the autoregressive head (model.ar_layers > 0) has no per-pixel "
                              "likelihood given z, so it cannot score a subset of the pixels")
        td_out, kls, log_ratio, resp, used = self._top_down(x.shape[0], self.num_layers, self.bottom_up(x), latents)
        params = td_out if self.ar_head is None else self.ar_head(td_out, self._input(x))
        log_px = D.log_prob(self.cfg.likelihood, params, x, likelihood_mask)
        penalty = None
        if resp is not None and self.cfg.mixture_entropy_weight > 0:
            # The paper's slight penalty on the entropy of each input's posterior over components.
            penalty = self.cfg.mixture_entropy_weight * entropy(resp)
        return MatNetOutput(log_px, torch.stack(kls, 1), log_ratio, params, penalty, used)

    def decode(self, x: torch.Tensor, latents: list[torch.Tensor]) -> torch.Tensor:
        """The TD output for the latents `latents` (z_0 first) of inputs x: what p(x | z) (or the
        autoregressive head's conditioning) is for them."""
        return self._top_down(x.shape[0], self.num_layers, self.bottom_up(x), latents)[0]

    @torch.no_grad()
    def generate(self, n: int) -> torch.Tensor:
        """The TD output for z drawn from the prior (ancestral sampling, eq. 1): the likelihood
        parameters of p(x | z), or with the autoregressive head, the head's conditioning."""
        return self._top_down(n, 0)[0]

    def _pixels(self, td_out: torch.Tensor, mean: bool) -> torch.Tensor:
        if self.ar_head is None:
            return D.mean_image(self.cfg.likelihood, td_out) if mean else D.sample(self.cfg.likelihood, td_out)
        x, means = self.ar_head.sample(td_out)  # pixel by pixel
        return means if mean else x

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True) -> torch.Tensor:
        """Images from the model: the mean of p(x|z) (default, the usual picture), or a draw. With
        the autoregressive head the image is drawn pixel by pixel, and `mean` shows the mean of each
        pixel's conditional given the pixels drawn before it."""
        return self._pixels(self.generate(n), mean)

    @torch.no_grad()
    def sample_given(self, x: torch.Tensor, k: int, mean: bool = True) -> torch.Tensor:
        """Images with the top k latent layers (z_0 .. z_{k-1}) drawn from the posterior for each input
        in x and the rest from the prior (the paper's Figure 3); k = 0 samples freely, k = num_layers
        reconstructs."""
        if not 0 <= k <= self.num_layers:
            raise ConfigError(f"k={k}: must be between 0 and the number of latent layers ({self.num_layers})")
        bu = self.bottom_up(x) if k > 0 else None
        return self._pixels(self._top_down(x.shape[0], k, bu)[0], mean)

    @torch.no_grad()
    def component_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """Each input's posterior over the mixture components of p(z_0), [B, K]: r_k proportional to
        pi_k exp(-KL(q(z_0|x) || p_k)), the terms of equation 12."""
        if self.top_prior is None:
            raise ConfigError("this model has no mixture prior (model.mixture_components = 0)")
        mean0, logvar0 = self.top_posterior(self.bottom_up(x)[1])
        return self.top_prior.kl(mean0, logvar0)[1]
