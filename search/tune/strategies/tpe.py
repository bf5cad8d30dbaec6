"""tpe: Optuna's TPE (Bergstra et al. 2011; multivariate, grouped, constant liar), every trial
trained to its end."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Strategy, tpe_sampler


@register
class Tpe(Strategy):
    name = "tpe"
    summary = "Optuna's TPE, every trial trained to the end"

    def sampler(self, space: Any, seed: int | None = None) -> Any:
        return tpe_sampler(space, seed)
