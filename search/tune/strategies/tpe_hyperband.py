"""tpe+hyperband: Optuna's TPE draws over asynchronous Hyperband's brackets: model-based draws with
early and late stopping mixed, in the spirit of BOHB (Falkner et al. 2018), which pairs a TPE-like
model with Hyperband."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Strategy, asha, asha_line, hyperband_brackets, tpe_sampler


@register
class TpeHyperband(Strategy):
    name = "tpe+hyperband"
    summary = "Optuna's TPE over asynchronous Hyperband's brackets (BOHB's idea)"

    def check(self, space: Any) -> None:
        super().check(space)
        self.check_rungs(space)

    def sampler(self, space: Any, seed: int | None = None) -> Any:
        return tpe_sampler(space, seed)

    def scheduler(self, space: Any, seed: int | None = None) -> Any:
        import numpy as np
        np.random.seed(space.settings.sampler.seed if seed is None else seed)  # Tune draws each trial's bracket
        return asha(space, hyperband_brackets(space))

    def describe(self, space: Any) -> str:
        return f"{self.name}: Optuna's TPE; asynchronous Hyperband: {asha_line(space, hyperband_brackets(space))}"
