"""gp+asha: Optuna's Gaussian-process sampler (base.gp_sampler), and ASHA stops the trials that trail
their rung. The GP learns from COMPLETE trials only: the trials ASHA stopped (PRUNED) do not teach it,
so it starts modelling once `sampler.n_startup_trials` trials have trained to their end."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Strategy, asha, asha_line, gp_sampler


@register
class GpAsha(Strategy):
    name = "gp+asha"
    summary = "Optuna's Gaussian-process sampler; ASHA stops the trials that trail at each rung"

    def check(self, space: Any) -> None:
        super().check(space)
        self.check_rungs(space)

    def sampler(self, space: Any, seed: int | None = None) -> Any:
        return gp_sampler(space, seed)

    def scheduler(self, space: Any, seed: int | None = None) -> Any:
        return asha(space, space.settings.scheduler.brackets)

    def describe(self, space: Any) -> str:
        return f"{self.name}: Optuna's Gaussian-process sampler; {asha_line(space, space.settings.scheduler.brackets)}"
