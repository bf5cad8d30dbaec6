"""Search strategies in simulated time: the platform's own strategy objects (its Optuna searcher,
Ray Tune's schedulers: search/tune/strategies/) drive trials whose curves come from a model of
recorded learning curves (table.py replays recorded runs; surrogate.py predicts), in an event loop
with a simulated clock, W trials at once, no Ray actors. The field's way to compare strategies at
budgets real trials cannot afford (Syne Tune's simulator back-end; Eggensperger et al. 2021,
HPOBench; Klein et al. 2020, LCBench).

One simulated run does what Tune's controller does (ray.tune.execution.tune_controller): a free
worker asks the searcher for a configuration (`suggest`; the scheduler's `on_trial_add`); each
report arrives at its simulated time and the scheduler decides first (continue or stop), the searcher
sees only a trial that goes on; a trial that trained its budget, was stopped or diverged ends
(scheduler, then searcher: `on_trial_complete`) and its worker takes the next configuration.

Compute is counted in trial seconds (every report's recorded seconds, all trials together: what a
user pays for) and, as a second view, in training steps. The strategy's own decision time is left off
the clock, so that a figure does not depend on how busy the host was; `decision_time=True` puts it on
(it then counts as compute too: the trial slot waits for it). Each result point says what the search
would return at that moment: the trial with the best value seen (as search.export picks it), and the
true value of that configuration at that trial's step (the model's `true_value`: the mean over the
recorded seeds in table mode).
"""
from __future__ import annotations

import heapq
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from ..store.keys import FINAL_KEY, ITERATION_KEY, STATUS_KEY, STEP_KEY, better
from ..store.outcome import Outcome, classify

UNITS = ("seconds", "steps")
STEPS, SECONDS, BEST, TRUE = 0, 1, 2, 3   # the fields of a SimRun.curve point


@dataclass(eq=False)
class SimTrial:
    """What Tune's schedulers read of a trial; hashable by identity, as Tune's trials are (schedulers keep
    sets and dicts of them)."""
    trial_id: str
    config: dict[str, Any]
    reports: list[Any]
    index: int = 0                   # the next report
    status: str = "RUNNING"
    stopped_at: Optional[int] = None  # the step it ended at


class _Controller:
    """The part of Tune's controller a scheduler may ask about (PBT would ask for more: not simulable)."""
    def __init__(self):
        self.trials: list[SimTrial] = []

    def get_trials(self) -> list[SimTrial]:
        return self.trials

    def get_live_trials(self) -> list[SimTrial]:
        return [t for t in self.trials if t.status == "RUNNING"]


@dataclass
class SimRun:
    strategy: str
    seed: int
    budget: dict[str, float]                                  # unit -> amount: it ran until it spent all
    # per result: [steps spent, seconds spent, best value seen, true value of the configuration returned]
    curve: list[list[float]] = field(default_factory=list)
    trials: dict[str, int] = field(default_factory=dict)      # outcome -> count
    decisions: list[tuple[str, str, int]] = field(default_factory=list)  # (trial, params as JSON, step it ended)
    starts: list[list[float]] = field(default_factory=list)   # [steps, seconds] spent when each trial started
    returned: Optional[str] = None                            # params (JSON) of the configuration returned
    sim_seconds: float = 0.0
    decision_seconds: float = 0.0

    @property
    def final(self) -> Optional[float]:
        return self.curve[-1][BEST] if self.curve else None


def simulate(model: Any, space: Any, strategy_name: str, seed: int, budget: dict[str, float], workers: int,
             decision_time: bool = False) -> SimRun:
    """One simulated search of `space` with the registered strategy `strategy_name` (its sampler and
    scheduler seeded with `seed`), `workers` trials at once, until the trials have spent `budget`
    ({unit: amount}, units trial "seconds" and training "steps": every one given). `model.curve(params,
    seed)` gives each trial's reports, `model.true_value(params, step)` what a configuration is worth."""
    if not budget or not set(budget) <= set(UNITS):
        raise ValueError(f"budget {budget!r}: give amounts of {' or '.join(UNITS)}")
    return _Search(model, space, strategy_name, seed, budget, decision_time).run(workers)


class _Search:
    """The event loop of one simulated search: `start` is a free worker taking a configuration,
    `arrive` one report reaching the scheduler and the searcher."""

    def __init__(self, model: Any, space: Any, strategy_name: str, seed: int, budget: dict[str, float],
                 decision_time: bool):
        from ..store.study import MEMORY, StudyRef
        from ..tune import strategies

        experiment = space.settings.experiment
        self.metric, self.mode = experiment.metric, experiment.mode
        strategy = strategies.get(strategy_name)
        study = StudyRef(MEMORY, f"sim-{strategy_name}-{seed}-{uuid.uuid4().hex[:8]}")
        study.create(self.mode, space.points(), self.metric)
        self.searcher = strategy.searcher(space, study, seed=seed)
        self.scheduler = strategy.scheduler(space, seed=seed)
        self.model, self.seed, self.budget, self.decision_time = model, seed, budget, decision_time
        self.controller = _Controller()
        self.out = SimRun(strategy_name, seed, dict(budget))
        self.events: list[tuple[float, int, SimTrial]] = []
        self.full_steps = int(model.steps[-1])
        self.order, self.spent, self.finished = 0, {"steps": 0.0, "seconds": 0.0}, False
        self.best: Optional[float] = None
        self.true: Optional[float] = None

    def run(self, workers: int) -> SimRun:
        for _ in range(workers):
            self.start(0.0)
        while self.events:
            now, _, trial = heapq.heappop(self.events)
            self.out.sim_seconds = now
            if not self.arrive(now, trial):
                break
        self.out.trials["total"] = len(self.controller.trials)
        return self.out

    def start(self, now: float) -> None:
        from ray.tune.search import Searcher
        if self.finished:
            return
        trial_id = f"{len(self.controller.trials):05d}"
        t0 = time.perf_counter()
        params = self.searcher.suggest(trial_id)
        took = time.perf_counter() - t0
        self.out.decision_seconds += took
        if params is None or params == Searcher.FINISHED:
            self.finished = True
            return
        waited = took if self.decision_time else 0.0  # on the clock, the slot waits: it counts as compute
        self.spent["seconds"] += waited
        trial = SimTrial(trial_id, dict(params), self.model.curve(params, self.seed))
        self.controller.trials.append(trial)
        self.out.starts.append([self.spent["steps"], self.spent["seconds"]])
        self.scheduler.on_trial_add(self.controller, trial)
        self.push(now + waited + trial.reports[0].seconds, trial)

    def push(self, at: float, trial: SimTrial) -> None:
        self.order += 1
        heapq.heappush(self.events, (at, self.order, trial))

    def arrive(self, now: float, trial: SimTrial) -> bool:
        """The trial's next report at `now`, as Tune's controller hands it on: the scheduler decides,
        the searcher sees a trial that goes on, an ended trial frees its worker. False: budget spent."""
        from ray.tune.schedulers import TrialScheduler

        report = trial.reports[trial.index]
        self.spent["steps"] += report.step - (trial.reports[trial.index - 1].step if trial.index else 0)
        self.spent["seconds"] += report.seconds
        last, diverged = trial.index == len(trial.reports) - 1, report.value is None
        result = {ITERATION_KEY: trial.index + 1, STEP_KEY: report.step,
                  self.metric: math.nan if diverged else report.value,
                  FINAL_KEY: last and not diverged and report.step == self.full_steps,
                  STATUS_KEY: str(Outcome.DIVERGED if diverged else Outcome.RUNNING)}
        if not diverged and better(report.value, self.best, self.mode):
            # what the search would return now: this trial (search.export takes the best value seen)
            self.best, self.true = report.value, self.model.true_value(trial.config, report.step)
            self.out.returned = json.dumps(trial.config, sort_keys=True)
        if self.best is not None:
            self.out.curve.append([self.spent["steps"], round(self.spent["seconds"], 4), self.best, self.true])
        decision = self.scheduler.on_trial_result(self.controller, trial, result)
        if decision != TrialScheduler.STOP:
            self.searcher.on_trial_result(trial.trial_id, result)
        if all(self.spent[unit] >= amount for unit, amount in self.budget.items()):
            return False
        if decision == TrialScheduler.STOP or last or diverged:
            trial.status, trial.stopped_at = "TERMINATED", report.step
            self.scheduler.on_trial_complete(self.controller, trial, result)
            self.searcher.on_trial_complete(trial.trial_id, result=result)
            outcome = str(classify(result, self.metric))
            self.out.trials[outcome] = self.out.trials.get(outcome, 0) + 1
            self.out.decisions.append((trial.trial_id, json.dumps(trial.config, sort_keys=True), report.step))
            self.start(now)
        else:
            trial.index += 1
            self.push(now + trial.reports[trial.index].seconds, trial)
        return True


def improvements(curve: list[list[float]]) -> list[list[float]]:
    """The points of a best-so-far curve where the best changed, and its last: the same step function."""
    out = [p for i, p in enumerate(curve) if i == 0 or p[BEST] != curve[i - 1][BEST]]
    return out + ([curve[-1]] if curve and out[-1] is not curve[-1] else [])
