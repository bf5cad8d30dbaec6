"""gp: Optuna's Gaussian-process sampler (GPSampler, noisy objective; base.gp_sampler), every trial
trained to its end, so every trial teaches the GP."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Strategy, gp_sampler


@register
class Gp(Strategy):
    name = "gp"
    summary = "Optuna's Gaussian-process sampler (noisy objective), every trial trained to the end"

    def sampler(self, space: Any, seed: int | None = None) -> Any:
        return gp_sampler(space, seed)
