"""tpe+asha: Optuna's TPE draws, ASHA stops the trials that trail their rung, and a stopped trial
reaches Optuna as PRUNED at the step it reached (search/tune/searcher.py), not as a finished one."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Strategy, asha, asha_line, tpe_sampler


@register
class TpeAsha(Strategy):
    name = "tpe+asha"
    summary = "Optuna's TPE; ASHA stops the trials that trail at each rung"

    def check(self, space: Any) -> None:
        super().check(space)
        self.check_rungs(space)

    def sampler(self, space: Any, seed: int | None = None) -> Any:
        return tpe_sampler(space, seed)

    def scheduler(self, space: Any, seed: int | None = None) -> Any:
        return asha(space, space.settings.scheduler.brackets)

    def describe(self, space: Any) -> str:
        return f"{self.name}: Optuna's TPE; {asha_line(space, space.settings.scheduler.brackets)}"
