"""One training update that never waits for the device: the loss of eq. 5 (plus eq. 13's regularizer
when asked), its gradient, the global gradient-norm clip and a fused Adam step.

Nothing here reads a value back to the host. Whether an update is skipped (non-finite loss or
gradient) is decided on the device: fused Adam takes a `found_inf` flag (the mechanism PyTorch's
GradScaler uses) and leaves parameters, moments and step count untouched when it is set. The running
sums of the loss, the counts of skipped updates and the length of the current run of bad ones are
device tensors too, read back by `read()` at the loop's log points only.

With `compile`, the forward pass and the loss go through torch.compile once per process (the model is
an argument, so a second model of the same layout reuses the graphs); on CUDA with CUDA graphs
(mode "reduce-overhead"), which replays the step's ~2,400 kernels from one launch.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn as nn

from .device import autocast
from .objectives import elbo_loss, inference_regularizer


def step_loss(model: nn.Module, x: torch.Tensor, kl_w: torch.Tensor, known: torch.Tensor | None,
              reg_weight: float, amp: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """The training loss (negative eq. 5 with the KL warm-up weight, plus lambda times eq. 13), the
    batch's mean ELBO, and the model's output."""
    with autocast(x.device, amp):
        out = model(x) if known is None else model(x, known)
        # Eq. 13: lambda * (-free energy of model samples), gradient to the inference network only.
        reg = inference_regularizer(model, x.shape[0]) if reg_weight > 0 else None
    loss = elbo_loss(out, kl_w)
    if reg is not None:
        loss = loss + reg_weight * reg
    return loss, out.elbo.float().mean(), out


def _forward(model, x, kl_w, known, reg_weight: float, amp: bool):
    loss, elbo, _ = step_loss(model, x, kl_w, known, reg_weight, amp)
    return loss, elbo


_COMPILED: dict[str, Any] = {}


def compiled_forward(device: torch.device):
    """torch.compile of the step's forward, made once per process and device type."""
    if device.type not in _COMPILED:
        mode = "reduce-overhead" if device.type == "cuda" else None
        _COMPILED[device.type] = torch.compile(_forward, mode=mode)
    return _COMPILED[device.type]


def make_optimizer(model: nn.Module, betas, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with L2 weight decay, fused (one multi-tensor kernel per step on CUDA; the CPU has a fused
    kernel too), so that a skipped update is decided on the device (found_inf)."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=True)


class TrainStep:
    """Call with a batch, the step number, the KL weight and the learning rate; nothing is returned
    (see `read`)."""

    def __init__(self, model: nn.Module, opt: torch.optim.Adam, device: torch.device, amp: bool,
                 compile: bool, grad_clip: float, reg_weight: float = 0.0):
        self.model, self.opt, self.device, self.amp = model, opt, device, amp
        self.compiled = compile
        self.forward = compiled_forward(device) if compile else _forward
        self.grad_clip = grad_clip if grad_clip > 0 else math.inf
        self.reg_weight = reg_weight
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.kl_w = torch.zeros((), device=device)
        # [sum of loss, sum of -ELBO, updates made] over the updates since the last read.
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.skipped = torch.zeros((), dtype=torch.int64, device=device)
        self.in_a_row = torch.zeros((), dtype=torch.int64, device=device)
        self.run_start = torch.zeros((), dtype=torch.int64, device=device)  # first step of that run
        self.first_step_seconds: float | None = None  # with compile: the compilation

    def __call__(self, x: torch.Tensor, step: int, kl_weight: float, lr: float,
                 known: torch.Tensor | None = None) -> None:
        first = self.first_step_seconds is None
        t0 = time.perf_counter() if first else 0.0
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.kl_w.fill_(kl_weight)  # a tensor input: a new weight every step compiles nothing new
        if self.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        loss, elbo = self.forward(self.model, x, self.kl_w, known, self.reg_weight, self.amp)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        # Sync-free clip (no .item()); a non-finite norm marks the update as one to skip.
        gnorm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        with torch.no_grad():
            ok = torch.isfinite(loss) & torch.isfinite(gnorm)
            self.opt.found_inf = (~ok).float()
            self.opt.step()
            self.sums += torch.stack([torch.where(ok, loss.detach().double(), 0.0),
                                      torch.where(ok, -elbo.detach().double(), 0.0), ok.double()])
            self.skipped += (~ok).long()
            self.run_start.copy_(torch.where(ok | (self.in_a_row > 0), self.run_start, step))
            self.in_a_row.copy_(torch.where(ok, 0, self.in_a_row + 1))
        if first:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.first_step_seconds = time.perf_counter() - t0

    def read(self, reset: bool = True) -> dict[str, float | int]:
        """The counters, read back to the host (one device synchronisation)."""
        loss_sum, elbo_sum, n_ok = self.sums.tolist()
        counts = torch.stack([self.skipped, self.in_a_row, self.run_start]).tolist()
        if reset:
            self.sums.zero_()
        return {"loss_sum": loss_sum, "neg_elbo_sum": elbo_sum, "updates": int(n_ok),
                "skipped": counts[0], "in_a_row": counts[1], "run_start": counts[2]}

    def set_skipped(self, n: int) -> None:
        self.skipped.fill_(n)
