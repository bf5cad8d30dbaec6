"""The pieces a MatNet is made of, so that a model can hold more than one of each: the builders of the
TD network and of a "BU network + merge modules" set, the BU pass (eq. 9), a merge path that walks
down beside the TD pass (eqs. 10-11), and the stochastic TD pass itself (eqs. 7-8).

An unconditional MatNet (model.py) has one TD network and one BU + merge set, its inference network.
A conditional MatNet (conditional.py) shares one TD network between two BU + merge sets: the
generator's, which gives p(z | x_k) (eq. 3), and the inference network's, which gives q(z | x_k, x_u)
(eq. 4). The functions here take the modules they use as arguments (duck-typed: anything with the
same attribute names), so MatNet keeps its own attributes, hence its parameter names.
"""
from __future__ import annotations

from typing import Protocol

import torch
import torch.nn as nn

from . import distributions as D
from .blocks import BUModule, Down, GaussianParams, MergeModule, TDModule, Up, conv3
from .sections import ModelConfig


class ScaleModules(nn.Module):
    """One meta module built (its spec: sections.MetaModule): the modules of one spatial scale, TD modules
    and/or the merge and BU modules that pair with them.
    MatNet keeps all three here (td, merge, bu); a conditional MatNet splits them between its TD
    network (td) and its two BU + merge sets (merge, bu)."""

    def __init__(self, width: int, scale: int, modules: int, latents: int, cfg: ModelConfig,
                 td: bool = True, bu_merge: bool = True, own_prior: bool = True):
        super().__init__()
        fc = scale == 0
        self.width, self.scale, self.latents = width, scale, latents
        if td:
            self.td = nn.ModuleList(TDModule(width, latents, fc, cfg.leak, cfg.param_scale_init, own_prior)
                                    for _ in range(modules))
        if bu_merge:
            # A meta module of deterministic TD modules (latents = 0) has no latent layers to infer.
            self.merge = nn.ModuleList(MergeModule(width, latents, fc, cfg.leak, cfg.param_scale_init)
                                       for _ in range(modules if latents > 0 else 0))
            self.bu = nn.ModuleList(BUModule(width, fc, cfg.leak) for _ in range(modules))


def build_metas(cfg: ModelConfig, **parts) -> nn.ModuleList:
    return nn.ModuleList(ScaleModules(m.width, m.scale, m.modules, m.latent_channels, cfg, **parts)
                         for m in cfg.meta_modules)


# ---- builders of the connectors (section 2.2: plain convolutions feed data in and out; strided
# layers join meta modules). Each returns fresh modules, so a model may build a second set. --------

def data_into_bu(cfg: ModelConfig, in_channels: int, size: int, finest: ScaleModules) -> tuple[nn.Module, nn.Module]:
    """(data_in, bu_into_finest): the input convolution and the connector into the finest meta module."""
    if finest.scale == 0:
        return nn.Flatten(), Down(in_channels, size, finest.width, 0, cfg.leak)
    return (nn.Sequential(conv3(in_channels, cfg.data_width), nn.LeakyReLU(cfg.leak)),
            Down(cfg.data_width, size, finest.width, finest.scale, cfg.leak))


def td_out_of_finest(cfg: ModelConfig, out_channels: int, size: int, finest: ScaleModules) -> nn.Module:
    """The TD network's output layer: the likelihood parameters of p(x | z) from the finest TD state."""
    if finest.scale == 0:
        return nn.Linear(finest.width, out_channels * size * size)
    return nn.Sequential(Up(finest.width, finest.scale, cfg.data_width, size, cfg.leak),
                         conv3(cfg.data_width, out_channels))


def down_connectors(metas: nn.ModuleList, leak: float) -> nn.ModuleList:
    """BU goes fine -> coarse: bu_down[k] joins meta module k+1 to meta module k."""
    return nn.ModuleList(Down(f.width, f.scale, co.width, co.scale, leak) for co, f in zip(metas[:-1], metas[1:]))


def up_connectors(metas: nn.ModuleList, leak: float) -> nn.ModuleList:
    """TD and merge go coarse -> fine: up[k] joins meta module k to meta module k+1."""
    return nn.ModuleList(Up(co.width, co.scale, f.width, f.scale, leak) for co, f in zip(metas[:-1], metas[1:]))


def top_gaussian(cfg: ModelConfig, coarsest: ScaleModules) -> GaussianParams:
    """BU module 0's Gaussian over z_0, from the last BU state: q(z_0 | x) in an inference network,
    p(z_0 | x_k) in a conditional generator."""
    top_in = coarsest.width * max(coarsest.scale, 1) ** 2
    return GaussianParams(nn.Sequential(nn.Flatten(), nn.Linear(top_in, 2 * cfg.top_latents)), cfg.param_scale_init)


class BUMergeNetwork(nn.Module):
    """One set of BU and merge modules with their connectors and the Gaussian over z_0 on top: a
    conditional MatNet holds two of these (the generator's and the inference network's)."""

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int], in_channels: int):
        super().__init__()
        size = image_shape[1]
        self.metas = build_metas(cfg, td=False)
        self.data_in, self.bu_into_finest = data_into_bu(cfg, in_channels, size, self.metas[-1])
        self.bu_down = down_connectors(self.metas, cfg.leak)
        self.merge_up = up_connectors(self.metas, cfg.leak)
        self.top_posterior = top_gaussian(cfg, self.metas[0])


class TopDownNetwork(nn.Module):
    """The TD network on its own (z_0's entry layer, the TD modules, their connectors, the output
    layer), for a conditional MatNet that shares it between generator and inference."""

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int], own_prior: bool = False):
        super().__init__()
        c, size, _ = image_shape
        self.metas = build_metas(cfg, bu_merge=False, own_prior=own_prior)
        self.td_out_of_finest = td_out_of_finest(cfg, D.param_channels(cfg.likelihood, c), size, self.metas[-1])
        self.td_up = up_connectors(self.metas, cfg.leak)
        self.td_top = Up(cfg.top_latents, 0, self.metas[0].width, self.metas[0].scale, cfg.leak)


# ---- the passes ---------------------------------------------------------------------------------

class _BUSide(Protocol):
    data_in: nn.Module
    bu_into_finest: nn.Module
    bu_down: nn.ModuleList
    metas: nn.ModuleList


BUStates = tuple[list[list[torch.Tensor]], torch.Tensor]


def bottom_up(side: _BUSide, x_in: torch.Tensor) -> BUStates:
    """BU pass (eq. 9) of one BU network over its input (already scaled for the networks). Returns,
    per meta module, the BU states in TD order (BU modules are numbered in reverse order of
    evaluation, so TD module i meets BU state h^b_i), and the final state that feeds BU module 0."""
    h = side.bu_into_finest(side.data_in(x_in))
    per_meta: list[list[torch.Tensor]] = [[] for _ in side.metas]
    for k in range(len(side.metas) - 1, -1, -1):
        if k < len(side.metas) - 1:
            h = side.bu_down[k](h)
        states = []
        for module in side.metas[k].bu:
            h = module(h)
            states.append(h)
        per_meta[k] = states[::-1]
    return per_meta, h


class MergePath:
    """One set of merge modules walking down beside the TD pass (eqs. 10-11): it keeps the running
    merge state h^m and compares the TD state with the BU states of its own BU network. Called at
    latent layer (m, i), it returns that layer's Gaussian: q(z_i | ...) for an inference network,
    p(z_i | z_<i, x_k) for a conditional generator."""

    def __init__(self, side, bu: BUStates):
        self.side = side
        self.bu_states, self.bu_top = bu
        self.state: torch.Tensor | None = None

    def top(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.side.top_posterior(self.bu_top)

    def start(self, td_state: torch.Tensor) -> None:
        self.state = td_state  # the merge network starts from the TD state that z_0 produced

    def up(self, m: int) -> None:
        self.state = self.side.merge_up[m - 1](self.state)

    def __call__(self, m: int, i: int, td_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        merge = self.side.metas[m].merge[i]
        self.state = merge(self.state, self.bu_states[m][i], td_state)  # eq. 10
        return merge.posterior(self.state)                                # eq. 11


class TDPrior:
    """The unconditional prior of each latent layer, from the TD state alone (eq. 8)."""

    def __init__(self, td_net):
        self.td_net = td_net

    def start(self, td_state: torch.Tensor) -> None:
        pass

    def up(self, m: int) -> None:
        pass

    def __call__(self, m: int, i: int, td_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.td_net.metas[m].td[i].prior(td_state)


def descend(td_net, z0: torch.Tensor, k: int, prior, posterior: MergePath | None,
            kls: list[torch.Tensor], log_ratio, given: list[torch.Tensor] | None = None):
    """The stochastic TD pass below z_0 (eqs. 7-8). Latent layers 1..k-1 are drawn from `posterior`
    (a merge path, eqs. 10-11), layers k.. from `prior` (eq. 8, or a conditional generator's merge
    path). `given` (one tensor per latent layer, z_0 first) replaces the draws by fixed values: the
    same pass then scores those latents (for Metropolis-within-Gibbs, and for tests).

    Appends the KL of every posterior layer to `kls` and adds log p(z_i|.) - log q(z_i|.) to
    `log_ratio`; returns the TD output, kls, log_ratio and the latents used (z_0 first)."""
    td_state = td_net.td_top(z0)
    prior.start(td_state)
    if posterior is not None:
        posterior.start(td_state)
    latents = [z0]
    layer = 1
    for m, meta in enumerate(td_net.metas):
        if m > 0:
            td_state = td_net.td_up[m - 1](td_state)
            prior.up(m)
            if layer < k:
                posterior.up(m)
        if meta.latents == 0:  # deterministic modules: eq. 7 without z
            for td in meta.td:
                td_state = td(td_state, None)
            continue
        for i, td in enumerate(meta.td):
            p_mean, p_logvar = prior(m, i, td_state)                       # eq. 8 / eq. 3
            if layer < k:
                q_mean, q_logvar = posterior(m, i, td_state)               # eqs. 10-11
                z = given[layer] if given is not None else D.sample_gaussian(q_mean, q_logvar)
                kls.append(D.gaussian_kl(q_mean, q_logvar, p_mean, p_logvar))
                log_ratio = log_ratio + D.gaussian_log_prob(z, p_mean, p_logvar) \
                    - D.gaussian_log_prob(z, q_mean, q_logvar)
            else:
                z = given[layer] if given is not None else D.sample_gaussian(p_mean, p_logvar)
            latents.append(z)
            td_state = td(td_state, z)                                      # eq. 7
            layer += 1
    return td_net.td_out_of_finest(td_state), kls, log_ratio, latents


class LatentLayers:
    """Bookkeeping of the latent layers, read from `self.metas` (meta modules with merge modules)."""

    metas: nn.ModuleList

    @property
    def num_layers(self) -> int:
        return 1 + sum(len(m.merge) for m in self.metas)

    def layer_meta(self) -> list[int]:
        """For every latent layer, the meta module it belongs to (-1 for the fully-connected z_0)."""
        return [-1] + [k for k, m in enumerate(self.metas) for _ in m.merge]

    def layer_names(self) -> list[str]:
        names = ["z0 (fc)"]
        for m in self.metas:
            tag = "fc" if m.scale == 0 else f"{m.scale}x{m.scale}"
            names += [f"z{len(names) + i} ({tag})" for i in range(len(m.merge))]
        return names

    def meta_labels(self) -> dict[int, str]:
        """A label for every value of layer_meta(): -1 is z_0, k the k-th meta module."""
        return {-1: "z0 (fc)", **{k: "fc" if m.scale == 0 else f"{m.scale}x{m.scale}"
                                  for k, m in enumerate(self.metas)}}
