"""Training that diverged: what is raised when too many updates in a row are not finite, and where the
first non-finite value of such an update came from.

The training step decides on the device whether an update is skipped (step.py), so the loop learns
of a run of bad updates only when it reads the counters back. It then replays the first bad step
eagerly with hooks on every module (`locate`), and the error names the step and the place: the first
module whose output held a non-finite value, else the first latent layer whose KL did (eqs. 5, 8, 11),
else the first parameter whose gradient did.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn


class NonFiniteLossError(RuntimeError):
    """Training diverged: too many updates in a row had a non-finite loss or gradient."""


def _finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    return True


def locate(model: nn.Module, run: Callable[[], tuple[torch.Tensor, "object"]]) -> str:
    """Replay one step: `run()` computes (loss, model output) eagerly; returns where the first
    non-finite value appeared, in words."""
    order: list[str] = []
    names = {m: n for n, m in model.named_modules() if n}

    def hook(module, _inputs, output):
        if not order and not _finite(output):
            order.append(names.get(module, type(module).__name__))

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        loss, out = run()
        if math.isfinite(float(loss.detach())):
            model.zero_grad(set_to_none=True)
            loss.backward()
    finally:
        for h in handles:
            h.remove()
    bad_params = [n for n, p in model.named_parameters() if not _finite(p.detach())]
    if bad_params:
        return f"parameter {bad_params[0]} itself is not finite"
    if order:
        return f"module {order[0]} gave the first non-finite output"
    kl = getattr(out, "kl_per_layer", None)
    if kl is not None and not _finite(kl):
        bad = (~torch.isfinite(kl.detach())).any(0).nonzero().flatten().tolist()
        layer_names = model.layer_names() if hasattr(model, "layer_names") else [f"z{i}" for i in range(kl.shape[1])]
        return f"the KL of latent layer {layer_names[bad[0]]} was the first non-finite term"
    if not math.isfinite(float(loss.detach())):
        return "every module's output was finite; the loss itself was not"
    bad_grads = [n for n, p in model.named_parameters() if p.grad is not None and not _finite(p.grad)]
    if bad_grads:
        return f"the gradient of {bad_grads[0]} was the first non-finite one"
    return "the replayed step was finite (the non-finite value depended on that step's random draws)"
