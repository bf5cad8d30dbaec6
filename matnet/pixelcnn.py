"""The local autoregressive head on p(x | z) (section 2.3): a small PixelCNN (van den Oord et al.)
conditioned on the output of the final TD module.

Its input is [TD output; true image]. The image enters through masked convolutions (mask A in the
first layer, mask B after), so the prediction for a pixel sees only the pixels before it in raster
order and, for colour, only the earlier channels of the same pixel (R -> G -> B, as PixelCNN). The TD
output enters every layer through its own unmasked convolution: it never depends on the image at
generation time, so it needs no mask, and the direct path improves gradient flow back into the
MatNet (the paper's trick). The head refines the TD output's likelihood parameters residually, so a
head that outputs zero leaves the plain MatNet.

Sampling is sequential, one pixel and one channel at a time. The TD output's contributions are
computed once per image; each step then recomputes only the masked stack on a window around the
pixel: L 3x3 masked layers reach L rows up and L columns either side, so rows [i-L, i] and columns
[j-L, j+L] give the same prediction as the whole image (checked by the tests).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import distributions as D


def colour_of_hidden(channels: int, colours: int) -> torch.Tensor:
    """Hidden channels are split into `colours` contiguous groups, one per colour channel."""
    return torch.arange(channels) * colours // channels


def colour_of_params(param_channels: int, colours: int) -> torch.Tensor:
    """Likelihood parameters are laid out [all means; all log-scales] (distributions.py): channel j
    belongs to colour j mod C."""
    return torch.arange(param_channels) % colours


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the past: rows above, pixels to the left on the same row, and at
    the centre the channels of earlier colours (mask A) or of earlier and the same colour (mask B)."""

    def __init__(self, colour_in: torch.Tensor, colour_out: torch.Tensor, kernel: int, mask_type: str):
        super().__init__(len(colour_in), len(colour_out), kernel, padding=kernel // 2)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        c = kernel // 2
        mask = torch.ones_like(self.weight)
        mask[:, :, c + 1:, :] = 0          # rows below
        mask[:, :, c, c + 1:] = 0          # right of the centre on the centre row
        before = colour_in[None, :] < colour_out[:, None] if mask_type == "A" \
            else colour_in[None, :] <= colour_out[:, None]
        mask[:, :, c, c] = before.to(mask.dtype)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNNHead(nn.Module):
    """params = td_out + out(h_L), h_1 = lrelu(A(x) + c_1(td_out)),
    h_l = h_{l-1} + lrelu(B_l(h_{l-1}) + c_l(td_out)): masked layers on the image, unmasked c_l on
    the TD output (into every layer), a 1x1 mask-B output layer."""

    def __init__(self, likelihood: str, colours: int, layers: int, channels: int, leak: float):
        super().__init__()
        self.likelihood, self.colours, self.leak = likelihood, colours, leak
        p = D.param_channels(likelihood, colours)
        image, hidden = torch.arange(colours), colour_of_hidden(channels, colours)
        self.masked = nn.ModuleList(
            [MaskedConv2d(image, hidden, 3, "A")] + [MaskedConv2d(hidden, hidden, 3, "B") for _ in range(layers - 1)])
        self.cond = nn.ModuleList(nn.Conv2d(p, channels, 3, padding=1) for _ in range(layers))
        self.out = MaskedConv2d(hidden, colour_of_params(p, colours), 1, "B")

    @property
    def reach(self) -> int:
        """How many rows up (and columns either side) the masked stack sees."""
        return len(self.masked)

    def conditioning(self, td_out: torch.Tensor) -> list[torch.Tensor]:
        """c_l(td_out) for every layer: no image in it, so computed once per image, also when sampling."""
        return [cond(td_out) for cond in self.cond]

    def _stack(self, x_in: torch.Tensor, conds: list[torch.Tensor]) -> torch.Tensor:
        h = x_in.to(conds[0].dtype)
        for l, (masked, c) in enumerate(zip(self.masked, conds)):
            a = F.leaky_relu(masked(h) + c, self.leak)
            h = a if l == 0 else h + a
        return self.out(h)

    def forward(self, td_out: torch.Tensor, x_in: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters of p(x | z) for every pixel. `x_in` is the true image as the networks
        take it (distributions.network_input)."""
        return td_out + self._stack(x_in, self.conditioning(td_out))

    def pixel_params(self, td_out: torch.Tensor, x_in: torch.Tensor, i: int, j: int,
                     conds: list[torch.Tensor] | None = None) -> torch.Tensor:
        """forward(td_out, x_in)[:, :, i, j], computed on the window of the image it depends on (rows
        i-L..i, columns j-L..j+L), [B, P]. Pass `conds` = conditioning(td_out) to reuse it."""
        conds = self.conditioning(td_out) if conds is None else conds
        r0, c0, c1 = max(0, i - self.reach), max(0, j - self.reach), min(td_out.shape[3], j + self.reach + 1)
        window = (slice(None), slice(None), slice(r0, i + 1), slice(c0, c1))
        out = self._stack(x_in[window], [c[window] for c in conds])
        return td_out[:, :, i, j] + out[:, :, i - r0, j - c0]

    @torch.no_grad()
    def sample(self, td_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ~ p(x | z), drawn pixel by pixel in raster order and channel by channel (R, G, B).
        Returns the draw (data units: {0,1} or 0..255) and, for display, the mean of each pixel's
        conditional given the pixels drawn before it."""
        b, _, h, w = td_out.shape
        c = self.colours
        x = torch.zeros(b, c, h, w, device=td_out.device)
        means = torch.zeros_like(x)
        x_in = D.network_input(self.likelihood, x)
        conds = self.conditioning(td_out)
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    # Channel k's parameters: [logit] or [mean; log-scale], as a 1x1 image.
                    p = self.pixel_params(td_out, x_in, i, j, conds)[:, k::c].float().view(b, -1, 1, 1)
                    x[:, k, i, j] = D.sample(self.likelihood, p).view(b)
                    means[:, k, i, j] = D.mean_image(self.likelihood, p).view(b)
                    x_in[:, k, i, j] = D.network_input(self.likelihood, x[:, k, i, j])
        return x, means
