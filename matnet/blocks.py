"""The three kinds of MatNet module (section 2.2) and the connectors between meta modules.

Convolutional modules follow equations 7-11 literally (3x3 shape-preserving convolutions, leaky
ReLU, residual updates). Fully-connected modules (the paper's dynamic-MNIST model) replace the
residual TD and merge updates with GRU-style stochastic state updates, as the paper says.
Every module has its own parameters.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3(c_in: int, c_out: int) -> nn.Conv2d:
    """The paper's shape-preserving `conv`."""
    return nn.Conv2d(c_in, c_out, 3, padding=1)


def layer(c_in: int, c_out: int, fc: bool) -> nn.Module:
    return nn.Linear(c_in, c_out) if fc else conv3(c_in, c_out)


class GaussianParams(nn.Module):
    """[mean; log var] from a state, times a trainable scale initialised small (the author's code
    multiplies every mean and log-variance by such a scale, 0.2 at initialisation, so that training
    starts with posteriors close to their priors and small KL)."""

    def __init__(self, net: nn.Module, scale_init: float):
        super().__init__()
        self.net = net
        self.scale = nn.Parameter(torch.tensor(float(scale_init)))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = (self.scale * self.net(h)).float().chunk(2, dim=1)
        return mean, logvar


class TDModule(nn.Module):
    """Top-down module i: the conditional prior p(z_i | h^t_i) (eq. 8) and the state update
    h^t_{i+1} = f^t_i(h^t_i, z_i) (eq. 7, or a GRU-style update when fully connected).

    With latents = 0 the module is deterministic (eq. 7 without z_i, no prior): the same network
    with fewer stochastic layers, used for one-latent-layer baselines."""

    def __init__(self, width: int, latents: int, fc: bool, leak: float, scale_init: float,
                 own_prior: bool = True):
        super().__init__()
        self.leak, self.latents = leak, latents
        self.gru = None
        # A conditional MatNet takes p(z_i | z_<i, x_k) from its generator's merge modules (eq. 3),
        # so its TD modules carry no eq. 8 prior of their own (own_prior=False).
        if latents > 0 and own_prior:
            # eq. 8: [mu_bar; log sigma_bar^2] = conv(lrelu(conv(h^t_i, v_bar)), w_bar)
            self.prior = GaussianParams(
                nn.Sequential(layer(width, width, fc), nn.LeakyReLU(leak), layer(width, 2 * latents, fc)),
                scale_init)
        if fc and latents > 0:
            self.gru = nn.GRUCell(latents, width)
        else:
            self.conv_v = layer(width + latents, width, fc)   # v^t_i
            self.conv_w = layer(width, width, fc)             # w^t_i

    def forward(self, td_state: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if self.gru is not None:
            return self.gru(z.to(td_state.dtype), td_state)
        # eq. 7: h^t_{i+1} = lrelu(h^t_i + conv(lrelu(conv([h^t_i; z_i], v)), w))
        h = td_state if z is None else torch.cat([td_state, z.to(td_state.dtype)], 1)
        r = self.conv_w(F.leaky_relu(self.conv_v(h), self.leak))
        return F.leaky_relu(td_state + r, self.leak)


class BUModule(nn.Module):
    """Bottom-up module i (eq. 9): h^b_i = lrelu(h^b_{i+1} + conv(lrelu(conv(h^b_{i+1}, v)), w))."""

    def __init__(self, width: int, fc: bool, leak: float):
        super().__init__()
        self.leak = leak
        self.conv_v = layer(width, width, fc)
        self.conv_w = layer(width, width, fc)

    def forward(self, bu_state: torch.Tensor) -> torch.Tensor:
        r = self.conv_w(F.leaky_relu(self.conv_v(bu_state), self.leak))
        return F.leaky_relu(bu_state + r, self.leak)


class MergeModule(nn.Module):
    """Merge module i (eqs. 10-11): compares the TD state with the matching BU state, given its own
    running state, and gives q(z_i | ...) = N(mu_i, sigma_i^2)."""

    def __init__(self, width: int, latents: int, fc: bool, leak: float, scale_init: float):
        super().__init__()
        self.fc, self.leak = fc, leak
        if fc:
            self.gru = nn.GRUCell(2 * width, width)
        else:
            self.conv_u = conv3(3 * width, width)  # u_i
            self.conv_v = conv3(width, width)      # v_i
        # eq. 11: [mu_i; log sigma_i^2] = conv(h^m_{i+1}, w_i)
        self.posterior = GaussianParams(layer(width, 2 * latents, fc), scale_init)

    def forward(self, merge_state: torch.Tensor, bu_state: torch.Tensor,
                td_state: torch.Tensor) -> torch.Tensor:
        if self.fc:
            return self.gru(torch.cat([bu_state, td_state], 1), merge_state)
        # eq. 10: h^m_{i+1} = lrelu(h^m_i + conv(lrelu(conv([h^m_i; h^b_i; h^t_i], u)), v))
        r = self.conv_v(F.leaky_relu(self.conv_u(torch.cat([merge_state, bu_state, td_state], 1)),
                                     self.leak))
        return F.leaky_relu(merge_state + r, self.leak)


class Up(nn.Module):
    """Connector from a coarser meta module (or the fully-connected top) to a finer one: changes
    width and up-samples, by a linear layer from fully connected, else by a strided transposed
    convolution (or a plain convolution when the scale stays)."""

    def __init__(self, w_in: int, s_in: int, w_out: int, s_out: int, leak: float):
        super().__init__()
        self.leak, self.w_out, self.s_out = leak, w_out, s_out
        if s_in == 0:
            self.op = nn.Linear(w_in, w_out * max(s_out, 1) ** 2)
        elif s_out == s_in:
            self.op = conv3(w_in, w_out)
        else:
            f = s_out // s_in
            # kernel 4, stride 2, padding 1 doubles exactly; other factors use kernel = stride.
            self.op = (nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1) if f == 2
                       else nn.ConvTranspose2d(w_in, w_out, f, stride=f))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.op(h)
        if self.s_out > 0 and h.dim() == 2:
            h = h.view(h.shape[0], self.w_out, self.s_out, self.s_out)
        return F.leaky_relu(h, self.leak)


class Down(nn.Module):
    """Connector from a finer meta module to a coarser one on the BU side: strided convolution,
    or flatten + linear into a fully-connected meta module."""

    def __init__(self, w_in: int, s_in: int, w_out: int, s_out: int, leak: float):
        super().__init__()
        self.leak = leak
        if s_out == 0:
            self.op = nn.Sequential(nn.Flatten(), nn.Linear(w_in * max(s_in, 1) ** 2, w_out))
        elif s_out == s_in:
            self.op = conv3(w_in, w_out)
        else:
            f = s_in // s_out
            self.op = (nn.Conv2d(w_in, w_out, 3, stride=2, padding=1) if f == 2
                       else nn.Conv2d(w_in, w_out, f, stride=f))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.op(h), self.leak)
