"""Optuna as a Ray Tune searcher, told the truth about trials that the scheduler stopped.

Ray's own OptunaSearch (Ray 2.60) tells Optuna that a trial ASHA stopped is COMPLETE, with its
low-fidelity score, which TPE then ranks against fully trained trials as if they were equals (a
test keeps that fact in view: tests/test_search_searcher.py). This searcher is written on the public
APIs of both libraries instead (Tune's `Searcher`, Optuna's ask-and-tell), and tells each trial as
`search.outcome.classify` decides, the same way the MLflow runs and the export see it:

- completed -> COMPLETE with its last value;
- pruned    -> PRUNED, its last value recorded as the intermediate value at the training step it
               reached (Optuna ranks pruned trials by how far they got);
- diverged, error -> FAIL.

Intermediate values are recorded at matnet's training step (`step` in a result), so the study reads
in the same units as the training logs.
"""
from __future__ import annotations

import logging
import math
import pickle
from typing import Any, Callable, Optional

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from .outcome import Outcome, classify

logger = logging.getLogger(__name__)

STEP_KEY = "step"
MAX_INVALID_DRAWS = 100
ITERATION_KEY = "training_iteration"
# What each outcome is told to Optuna as.
OPTUNA_STATE = {Outcome.COMPLETED: TrialState.COMPLETE, Outcome.PRUNED: TrialState.PRUNED,
                Outcome.DIVERGED: TrialState.FAIL, Outcome.ERROR: TrialState.FAIL}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class OptunaSearcher(Searcher):
    """`space(trial)` is an Optuna define-by-run function (search.space.Space.suggest)."""

    def __init__(self, space: Callable[[optuna.Trial], Any], metric: str, mode: str,
                 sampler: Optional[optuna.samplers.BaseSampler] = None,
                 points_to_evaluate: Optional[list[dict[str, Any]]] = None,
                 check: Optional[Callable[[dict[str, Any]], Any]] = None):
        super().__init__(metric=metric, mode=mode)
        self.space = space
        # check(params) raises ConfigError for drawn parameters that make no trainable config
        # (search.space.Space.valid_trial_config); such a draw is told to Optuna as FAIL and drawn
        # again, so no trial is started (and retried) only to fail its config check.
        self.check = check
        self.study = optuna.create_study(sampler=sampler, pruner=optuna.pruners.NopPruner(),
                                         direction="minimize" if mode == "min" else "maximize")
        for point in points_to_evaluate or []:
            self.study.enqueue_trial(point)
        self.trials: dict[str, optuna.Trial] = {}     # Tune trial id -> its Optuna trial
        self.steps_told: dict[str, set[int]] = {}     # steps with an intermediate value, per trial
        self.told: set[str] = set()                   # trials whose end Optuna knows

    # ---- Tune's Searcher interface ---------------------------------------------------------------
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: dict, **spec: Any) -> bool:
        return False  # the space, metric and mode are given at construction

    def suggest(self, trial_id: str) -> Optional[dict[str, Any]]:
        if trial_id in self.trials:
            return dict(self.trials[trial_id].params)
        for _ in range(MAX_INVALID_DRAWS):
            trial = self.study.ask()
            self.space(trial)
            problem = self._problem(trial.params)
            if problem is None:
                self.trials[trial_id] = trial
                return dict(trial.params)
            trial.set_user_attr("invalid", problem)
            self.study.tell(trial, state=TrialState.FAIL)
            logger.warning("search: drew a config matnet cannot train (%s); drawing again", problem)
        logger.error("search: %d draws in a row made no trainable config; no more trials are started. Fix the space "
                     "(python -m search.run SPACE --dry-run shows what it draws)", MAX_INVALID_DRAWS)
        return Searcher.FINISHED

    def _problem(self, params: dict[str, Any]) -> Optional[str]:
        if self.check is None:
            return None
        from matnet.config import ConfigError
        try:
            self.check(params)
        except ConfigError as e:
            return str(e)
        return None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self.trials and trial_id not in self.told:
            self._record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict[str, Any]] = None, error: bool = False) -> None:
        if trial_id not in self.trials or trial_id in self.told:
            return
        trial = self.trials[trial_id]
        outcome = classify(result, errored=error, ended=True)
        value = (result or {}).get(self.metric)
        if outcome is Outcome.COMPLETED and not _finite(value):
            outcome = Outcome.PRUNED  # nothing to rank it by
        if result:
            self._record(trial_id, result)  # the result the scheduler stopped it on never came through on_trial_result
        trial.set_user_attr("ray_trial_id", trial_id)
        trial.set_user_attr("status", str(outcome))
        if result and (STEP_KEY in result or ITERATION_KEY in result):
            trial.set_user_attr("step_reached", self._step(result))
        try:
            self.study.tell(trial, float(value) if outcome is Outcome.COMPLETED else None,
                            state=OPTUNA_STATE[outcome])
        except Exception as exc:  # noqa: BLE001 - e.g. the study already holds this trial as finished
            logger.warning("Optuna refused the end of trial %s: %s", trial_id, exc)
        self.told.add(trial_id)
        self.steps_told.pop(trial_id, None)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))

    # ---- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _step(result: dict[str, Any]) -> int:
        step = result.get(STEP_KEY)
        return int(step) if _finite(step) else int(result[ITERATION_KEY])

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        """The result's value as Optuna's intermediate value at its training step (once per step)."""
        value = result.get(self.metric)
        if not _finite(value) or (STEP_KEY not in result and ITERATION_KEY not in result):
            return
        step = self._step(result)
        told = self.steps_told.setdefault(trial_id, set())
        if step not in told:
            self.trials[trial_id].report(float(value), step)
            told.add(step)
