"""hyperband: random draws spread over Hyperband's brackets (Li et al. 2018), run asynchronously:
each trial joins one of s_max + 1 brackets whose first rung comes after grace_period x
reduction_factor^s reports, so some trials are judged early and others only late (Ray Tune's
AsyncHyperBand, i.e. ASHA with several brackets; Li et al. 2020, section 3)."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Strategy, asha, asha_line, hyperband_brackets


@register
class Hyperband(Strategy):
    name = "hyperband"
    summary = "random draws over Hyperband's brackets (asynchronous): early and late stopping mixed"

    def check(self, space: Any) -> None:
        super().check(space)
        self.check_rungs(space)

    def scheduler(self, space: Any, seed: int | None = None) -> Any:
        import numpy as np
        # Tune assigns a trial its bracket with numpy's global generator: seeded, a search is repeatable.
        np.random.seed(space.settings.sampler.seed if seed is None else seed)
        return asha(space, hyperband_brackets(space))

    def describe(self, space: Any) -> str:
        return f"{self.name}: random draws; asynchronous Hyperband: {asha_line(space, hyperband_brackets(space))}"
