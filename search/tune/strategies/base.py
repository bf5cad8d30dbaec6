"""What a search strategy is: how a search draws configurations (an Optuna sampler behind the
platform's searcher) and which trials it stops, pauses or clones (a Ray Tune scheduler).

Most strategies are a sampler and a scheduler composed (composed.py, from the parts in samplers.py
and schedulers.py); one that is more than that pair (pbt.py) is a module with its own subclass of
`Strategy`, registered by name with `@register`. The registry (strategies/__init__.py) knows both,
`search.run --help` lists them, a space file names one (`strategy: NAME`, or `sampler.type` +
`scheduler.type`), and `check` refuses a space it cannot run before Ray starts. The simulator
(search/bench/simulate.py) drives the same objects `sampler`, `searcher` and `scheduler` return, with a
simulated clock.
"""
from __future__ import annotations

from typing import Any, ClassVar

from ...space import Space, SpaceError
from ...space.errors import fail


class Strategy:
    name: ClassVar[str]
    summary: ClassVar[str]           # one line: --help and the dry run
    uses_study: ClassVar[bool] = True  # the Optuna study records its trials (PBT's mutate: it does not)
    simulable: ClassVar[bool] = True   # its trials are fixed configurations, so recorded curves can stand in
    Options: ClassVar[Any] = None      # a pydantic model of `strategy: {name: ..., OPTION: ...}`, if it takes any

    # ---- what a space must allow ------------------------------------------------------------------
    def check(self, space: Space) -> None:
        """SpaceError (one line) for a space this strategy cannot run."""
        mutable = [name for name, p in space.params().items() if getattr(p, "mutable", False)]
        if mutable:
            raise fail(space.path, f"search.{mutable[0]}.mutable", "only the pbt strategy changes parameters during "
                                                                  "a trial; drop mutable, or use strategy: pbt")

    def check_rungs(self, space: Space) -> None:
        """A scheduler that counts a trial's reports must know how many a full trial makes."""
        from matnet.budget import BUDGET_KEYS

        scheduler = space.settings.scheduler
        searched = {node.key for node in space.nodes if node.key is not None}
        if scheduler.max_t is None:
            varied = [key for key in BUDGET_KEYS if key in searched]
            if varied:
                raise fail(space.path, "scheduler.max_t", f"needed because {varied[0]} is searched (trials report a "
                                                          f"different number of times); set max_t to the reports of "
                                                          f"the longest trial")
        reports = space.reports_per_trial()
        if scheduler.grace_period > reports:
            raise fail(space.path, "scheduler.grace_period", f"{scheduler.grace_period} is more than the {reports} "
                                                             f"reports a trial makes; lower it (or report more often "
                                                             f"with train.eval_every_steps)")

    # ---- the pieces ------------------------------------------------------------------------------
    def sampler(self, space: Space, seed: int | None = None) -> Any:
        """The Optuna sampler (seed: the space's sampler.seed unless given)."""
        from .samplers import random_sampler
        return random_sampler(space, seed)

    def scheduler(self, space: Space, seed: int | None = None) -> Any:
        """The Ray Tune scheduler (a new object for every search)."""
        from .schedulers import fifo
        return fifo(space, seed)

    def searcher(self, space: Space, study: Any, seed: int | None = None) -> Any:
        """The Tune search algorithm: the platform's Optuna searcher on the search's study."""
        import optuna

        from ..searcher import OptunaSearcher
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        experiment = space.settings.experiment
        return OptunaSearcher(space=space.suggest, metric=experiment.metric, mode=experiment.mode, study=study,
                              sampler=self.sampler(space, seed), check=space.valid_trial_config)

    def checkpoints_to_keep(self, space: Space) -> int | None:
        """Checkpoints Tune keeps per trial (the best by the metric, and the latest); None: all."""
        return space.settings.experiment.keep_checkpoints

    def param_space(self, space: Space) -> dict[str, Any] | None:
        """The Tuner's param_space, for a search algorithm that needs one (Tune's variant generator)."""
        return None

    def describe(self, space: Space) -> str:
        return f"{self.name}: {self.summary}"


__all__ = ["Strategy", "SpaceError"]
