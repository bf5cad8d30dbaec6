"""What a search strategy is: how a search draws configurations (an Optuna sampler behind the
platform's searcher) and which trials it stops, pauses or clones (a Ray Tune scheduler).

A strategy is one module in this package with one subclass of `Strategy`, registered by name with
`@register`; the registry (strategies/__init__.py) finds it, `search.run --help` lists it, a space
file names it (`strategy: NAME`, or the older `sampler.type` + `scheduler.type`), and `check` refuses
a space it cannot run before Ray starts. The simulator (search/bench/simulate.py) drives the same
objects `sampler`, `searcher` and `scheduler` return, with a simulated clock.
"""
from __future__ import annotations

import math
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
        import optuna
        return optuna.samplers.RandomSampler(seed=space.settings.sampler.seed if seed is None else seed)

    def scheduler(self, space: Space, seed: int | None = None) -> Any:
        """The Ray Tune scheduler (a new object for every search)."""
        from ray.tune.schedulers import FIFOScheduler
        return FIFOScheduler()

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


def asha(space: Space, brackets: int) -> Any:
    """Ray Tune's asynchronous successive halving over the space's reports, with `brackets` brackets
    (more than one: asynchronous Hyperband; Li et al. 2020, "A System for Massively Parallel
    Hyperparameter Tuning")."""
    from ray.tune.schedulers import ASHAScheduler
    settings, experiment = space.settings.scheduler, space.settings.experiment
    return ASHAScheduler(time_attr="training_iteration", metric=experiment.metric, mode=experiment.mode,
                         max_t=space.reports_per_trial(), grace_period=settings.grace_period,
                         reduction_factor=settings.reduction_factor, brackets=brackets)


def asha_line(space: Space, brackets: int) -> str:
    s = space.settings.scheduler
    return (f"ASHA over {space.reports_per_trial()} reports per trial (grace {s.grace_period}, reduction "
            f"{s.reduction_factor:g}" + (f", {brackets} brackets" if brackets > 1 else "") + ")")


def hyperband_brackets(space: Space) -> int:
    """Hyperband's s_max + 1 brackets for the space's reports: one per rung a trial can start at
    (Li et al. 2018, "Hyperband", Algorithm 1: s_max = floor(log_eta(R / r_min)))."""
    settings = space.settings.scheduler
    ratio = space.reports_per_trial() / settings.grace_period
    return max(1, int(math.floor(math.log(ratio) / math.log(settings.reduction_factor) + 1e-9)) + 1)


def tpe_sampler(space: Space, seed: int | None = None) -> Any:
    """Optuna's TPE as the space's sampler settings ask: multivariate and grouped (suits spaces whose
    trials have different parameters), with constant_liar so that parallel trials are not drawn alike."""
    import warnings

    import optuna
    s = space.settings.sampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=s.seed if seed is None else seed, n_startup_trials=s.n_startup_trials,
                                          multivariate=s.multivariate, group=s.group and s.multivariate,
                                          constant_liar=True)


__all__ = ["Strategy", "SpaceError", "asha", "hyperband_brackets", "tpe_sampler"]
