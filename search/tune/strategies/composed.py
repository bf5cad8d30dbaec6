"""A strategy composed of a sampler (samplers.py) and a scheduler (schedulers.py): `tpe+asha` is
Optuna's TPE drawing and ASHA stopping. A trial that a scheduler stops reaches Optuna as PRUNED at
the step it reached (search/tune/searcher.py), not as a finished one."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

from .base import Strategy


class Composed(Strategy):
    """Made by the registry (strategies/__init__.py, `composed`) for each sampler and scheduler pair."""
    sampler_part: ClassVar[Any]
    scheduler_part: ClassVar[Any]

    def check(self, space: Any) -> None:
        super().check(space)
        if self.scheduler_part.counts_reports:
            self.check_rungs(space)

    def sampler(self, space: Any, seed: int | None = None) -> Any:
        return self.sampler_part.make(space, seed)

    def scheduler(self, space: Any, seed: int | None = None) -> Any:
        return self.scheduler_part.make(space, seed)

    def describe(self, space: Any) -> str:
        return f"{self.name}: {self.sampler_part.summary}; {self.scheduler_part.describe(space)}"


@lru_cache(maxsize=None)  # one class per pair: a strategy's type is the same each time
def composed(sampler: Any, scheduler: Any, name: str) -> type[Composed]:
    return type(f"Composed[{name}]", (Composed,), {
        "name": name, "summary": f"{sampler.summary}; {scheduler.summary}",
        "sampler_part": sampler, "scheduler_part": scheduler, "__module__": __name__})
