"""The schedulers a strategy is composed from: which trials Ray Tune stops early. Each is registered
once; every sampler (samplers.py) paired with every scheduler is a strategy (composed.py)."""
from __future__ import annotations

import math
from typing import Any

from . import SchedulerPart, register_scheduler


def fifo(space: Any, seed: int | None = None) -> Any:
    from ray.tune.schedulers import FIFOScheduler
    return FIFOScheduler()


def asha(space: Any, brackets: int) -> Any:
    """Ray Tune's asynchronous successive halving over the space's reports, with `brackets` brackets
    (more than one: asynchronous Hyperband; Li et al. 2020, "A System for Massively Parallel
    Hyperparameter Tuning")."""
    from ray.tune.schedulers import ASHAScheduler
    settings, experiment = space.settings.scheduler, space.settings.experiment
    return ASHAScheduler(time_attr="training_iteration", metric=experiment.metric, mode=experiment.mode,
                         max_t=space.reports_per_trial(), grace_period=settings.grace_period,
                         reduction_factor=settings.reduction_factor, brackets=brackets)


def asha_line(space: Any, brackets: int) -> str:
    s = space.settings.scheduler
    return (f"ASHA over {space.reports_per_trial()} reports per trial (grace {s.grace_period}, reduction "
            f"{s.reduction_factor:g}" + (f", {brackets} brackets" if brackets > 1 else "") + ")")


def hyperband_brackets(space: Any) -> int:
    """Hyperband's s_max + 1 brackets for the space's reports: one per rung a trial can start at
    (Li et al. 2018, "Hyperband", Algorithm 1: s_max = floor(log_eta(R / r_min)))."""
    settings = space.settings.scheduler
    ratio = space.reports_per_trial() / settings.grace_period
    return max(1, int(math.floor(math.log(ratio) / math.log(settings.reduction_factor) + 1e-9)) + 1)


def hyperband(space: Any, seed: int | None = None) -> Any:
    """Asynchronous Hyperband (Li et al. 2018; run as ASHA with s_max + 1 brackets, Li et al. 2020,
    section 3): each trial joins a bracket whose first rung comes after grace_period x reduction_factor^s
    reports, so some trials are judged early and others only late."""
    import numpy as np
    # Tune assigns a trial its bracket with numpy's global generator: seeded, a search is repeatable.
    np.random.seed(space.settings.sampler.seed if seed is None else seed)
    return asha(space, hyperband_brackets(space))


register_scheduler(SchedulerPart("none", "every trial to its end", fifo, counts_reports=False,
                                 describe=lambda space: "every trial trained to the end"))
register_scheduler(SchedulerPart(
    "asha", "ASHA stops trials that trail",
    lambda space, seed=None: asha(space, space.settings.scheduler.brackets),
    describe=lambda space: asha_line(space, space.settings.scheduler.brackets)))
register_scheduler(SchedulerPart(
    "hyperband", "async Hyperband: early and late stops",
    hyperband, describe=lambda space: f"asynchronous Hyperband: {asha_line(space, hyperband_brackets(space))}"))
