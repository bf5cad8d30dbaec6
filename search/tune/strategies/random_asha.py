"""random+asha: random draws, and ASHA stops the trials that trail their rung (Li et al. 2020)."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Strategy, asha, asha_line


@register
class RandomAsha(Strategy):
    name = "random+asha"
    summary = "random draws; ASHA stops the trials that trail at each rung"

    def check(self, space: Any) -> None:
        super().check(space)
        self.check_rungs(space)

    def scheduler(self, space: Any, seed: int | None = None) -> Any:
        return asha(space, space.settings.scheduler.brackets)

    def describe(self, space: Any) -> str:
        return f"{self.name}: random draws; {asha_line(space, space.settings.scheduler.brackets)}"
