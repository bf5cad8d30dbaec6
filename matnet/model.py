"""The Matryoshka Network: a top-down generator, a bottom-up network and merge modules (Fig. 1).

Latent layers are numbered as in the paper: z_0 is the fully-connected top, then one layer per TD
module, coarse to fine. `forward(x)` runs inference (BU pass, then the stochastic TD pass guided by
the merge modules) and returns log p(x|z) and the KL of every latent layer separately.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from . import distributions as D
from .blocks import BUModule, Down, GaussianParams, MergeModule, TDModule, Up, conv3
from .config import ConfigError, ModelConfig


@dataclass
class MatNetOutput:
    log_px: torch.Tensor        # [B] log p(x | z), nats
    kl_per_layer: torch.Tensor  # [B, L] analytic KL(q(z_i|.) || p(z_i|.)), layer 0 = z_0
    log_ratio: torch.Tensor     # [B] sum_i log p(z_i|.) - log q(z_i|.) at the sampled z
    params: torch.Tensor        # likelihood parameters of p(x | z)

    @property
    def elbo(self) -> torch.Tensor:
        """Equation 5 with the analytic per-layer KL, per example."""
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
        if mm.width < 1 or mm.modules < 1 or mm.latent_channels < 1:
            raise ConfigError(f"{where}: width, modules and latent_channels must be >= 1, got {mm}")
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


class MetaModule(nn.Module):
    """The TD modules and merge modules of one spatial scale, with their BU counterparts."""

    def __init__(self, width: int, scale: int, modules: int, latents: int, cfg: ModelConfig):
        super().__init__()
        fc = scale == 0
        self.width, self.scale, self.latents = width, scale, latents
        self.td = nn.ModuleList(TDModule(width, latents, fc, cfg.leak, cfg.param_scale_init)
                                for _ in range(modules))
        self.merge = nn.ModuleList(MergeModule(width, latents, fc, cfg.leak, cfg.param_scale_init)
                                   for _ in range(modules))
        self.bu = nn.ModuleList(BUModule(width, fc, cfg.leak) for _ in range(modules))


class MatNet(nn.Module):
    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        validate_layout(cfg, image_shape)
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        c, size, _ = image_shape
        leak = cfg.leak
        self.metas = nn.ModuleList(MetaModule(m.width, m.scale, m.modules, m.latent_channels, cfg)
                                   for m in cfg.meta_modules)
        first, last = self.metas[0], self.metas[-1]
        out_ch = D.param_channels(cfg.likelihood, c)
        self.fc_only = last.scale == 0

        # Data into the BU network and out of the TD network (plain convolutions, section 2.2).
        if self.fc_only:
            self.data_in = nn.Flatten()
            self.bu_into_finest = Down(c, size, last.width, 0, leak)
            self.td_out_of_finest = nn.Linear(last.width, out_ch * size * size)
        else:
            self.data_in = nn.Sequential(conv3(c, cfg.data_width), nn.LeakyReLU(leak))
            self.bu_into_finest = Down(cfg.data_width, size, last.width, last.scale, leak)
            self.td_out_of_finest = nn.Sequential(Up(last.width, last.scale, cfg.data_width, size, leak),
                                                  conv3(cfg.data_width, out_ch))
        # Connectors between meta modules: BU goes fine -> coarse, TD and merge go coarse -> fine.
        self.bu_down = nn.ModuleList(Down(f.width, f.scale, co.width, co.scale, leak)
                                     for co, f in zip(self.metas[:-1], self.metas[1:]))
        self.td_up = nn.ModuleList(Up(co.width, co.scale, f.width, f.scale, leak)
                                   for co, f in zip(self.metas[:-1], self.metas[1:]))
        self.merge_up = nn.ModuleList(Up(co.width, co.scale, f.width, f.scale, leak)
                                      for co, f in zip(self.metas[:-1], self.metas[1:]))
        # The top: BU module 0 gives q(z_0 | x); z_0 enters the TD network through a linear layer.
        top_in = first.width * max(first.scale, 1) ** 2
        self.top_posterior = GaussianParams(nn.Sequential(nn.Flatten(), nn.Linear(top_in, 2 * cfg.top_latents)),
                                            cfg.param_scale_init)
        self.td_top = Up(cfg.top_latents, 0, first.width, first.scale, leak)

    # ---- bookkeeping ---------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return 1 + sum(len(m.td) for m in self.metas)

    def layer_meta(self) -> list[int]:
        """For every latent layer, the meta module it belongs to (-1 for the fully-connected z_0)."""
        return [-1] + [k for k, m in enumerate(self.metas) for _ in m.td]

    def layer_names(self) -> list[str]:
        names = ["z0 (fc)"]
        for m in self.metas:
            tag = "fc" if m.scale == 0 else f"{m.scale}x{m.scale}"
            names += [f"z{len(names)} ({tag})" for _ in m.td]
        return names

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """Data scaled for the networks: {0,1} kept, 8-bit mapped to [-1, 1]."""
        return x if self.cfg.likelihood == "bernoulli" else x / 127.5 - 1.0

    # ---- the networks --------------------------------------------------------------------------
    def bottom_up(self, x: torch.Tensor) -> tuple[list[list[torch.Tensor]], torch.Tensor]:
        """BU pass (eq. 9). Returns, per meta module, the BU states in TD order (BU modules are
        numbered in reverse order of evaluation, so TD module i meets BU state h^b_i), and the
        final state that feeds BU module 0."""
        h = self.bu_into_finest(self.data_in(self._input(x)))
        per_meta: list[list[torch.Tensor]] = [[] for _ in self.metas]
        for k in range(len(self.metas) - 1, -1, -1):
            if k < len(self.metas) - 1:
                h = self.bu_down[k](h)
            states = []
            for module in self.metas[k].bu:
                h = module(h)
                states.append(h)
            per_meta[k] = states[::-1]
        return per_meta, h

    def forward(self, x: torch.Tensor) -> MatNetOutput:
        bu_states, bu_top = self.bottom_up(x)
        mean0, logvar0 = self.top_posterior(bu_top)
        z0 = D.sample_gaussian(mean0, logvar0)
        zeros = torch.zeros_like(mean0)
        kls = [D.gaussian_kl(mean0, logvar0, zeros, zeros)]
        log_ratio = D.gaussian_log_prob(z0, zeros, zeros) - D.gaussian_log_prob(z0, mean0, logvar0)

        td_state = self.td_top(z0)
        merge_state = td_state  # the merge network starts from the TD state that z_0 produced
        for k, meta in enumerate(self.metas):
            if k > 0:
                td_state = self.td_up[k - 1](td_state)
                merge_state = self.merge_up[k - 1](merge_state)
            for td, merge, bu_state in zip(meta.td, meta.merge, bu_states[k]):
                p_mean, p_logvar = td.prior(td_state)                       # eq. 8
                merge_state = merge(merge_state, bu_state, td_state)        # eq. 10
                q_mean, q_logvar = merge.posterior(merge_state)             # eq. 11
                z = D.sample_gaussian(q_mean, q_logvar)
                kls.append(D.gaussian_kl(q_mean, q_logvar, p_mean, p_logvar))
                log_ratio = log_ratio + D.gaussian_log_prob(z, p_mean, p_logvar) \
                    - D.gaussian_log_prob(z, q_mean, q_logvar)
                td_state = td(td_state, z)                                  # eq. 7
        params = self.td_out_of_finest(td_state)
        params = params.view(x.shape[0], -1, *self.image_shape[1:])
        log_px = D.log_prob(self.cfg.likelihood, params, x)
        return MatNetOutput(log_px, torch.stack(kls, 1), log_ratio, params)

    @torch.no_grad()
    def generate(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Likelihood parameters of p(x | z) for z drawn from the prior (ancestral sampling, eq. 1)."""
        device = device or next(self.parameters()).device
        z0 = torch.randn(n, self.cfg.top_latents, device=device)
        td_state = self.td_top(z0)
        for k, meta in enumerate(self.metas):
            if k > 0:
                td_state = self.td_up[k - 1](td_state)
            for td in meta.td:
                p_mean, p_logvar = td.prior(td_state)
                td_state = td(td_state, D.sample_gaussian(p_mean, p_logvar))
        return self.td_out_of_finest(td_state).view(n, -1, *self.image_shape[1:])

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True) -> torch.Tensor:
        """Images from the model: the mean of p(x|z) (default, the usual picture), or a draw."""
        params = self.generate(n)
        return D.mean_image(self.cfg.likelihood, params) if mean else D.sample(self.cfg.likelihood, params)
