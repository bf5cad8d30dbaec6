"""Ray Tune's OptunaSearch, told the truth about trials that the scheduler stopped.

Ray's OptunaSearch (ray/tune/search/optuna/optuna_search.py, Ray 2.60) reports every result to the
Optuna trial, but when ASHA stops a trial the controller skips `on_trial_result` for the stopping
result and then calls `on_trial_complete(trial_id, result=last_result)`. Because that result holds
the metric, OptunaSearch tells Optuna the trial is COMPLETE with its low-fidelity score, which
TPE then compares with fully trained trials as if they were equals.

Here a trial stopped before it made all its reports is told as PRUNED, after its last value is
recorded as the intermediate value at the training step it reached (Optuna then ranks it among
pruned trials by how far it got). A trial that ended with `status: diverged` is told as FAIL, a
trial that crashed as FAIL (as before). Intermediate values are recorded at matnet's training
step (`step` in the result) rather than at Tune's iteration count, so the Optuna study reads in
the same units as the training logs.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Optional

from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)


class PruningOptunaSearch(OptunaSearch):
    def __init__(self, *args: Any, max_t: int, time_attr: str = "training_iteration",
                 step_attr: str = "step", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._max_t = max_t
        self._time_attr = time_attr
        self._step_attr = step_attr
        # trial id -> the last iteration passed to on_trial_result (a completed trial's last
        # result passes there; a result on which the scheduler stopped a trial does not).
        self._last_seen: dict[str, int] = {}
        self._steps_told: dict[str, set[int]] = {}

    def _step(self, result: dict[str, Any]) -> int:
        step = result.get(self._step_attr)
        return int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else int(result[self._time_attr])

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        step = self._step(result)
        told = self._steps_told.setdefault(trial_id, set())
        if step not in told:
            self._ot_trials[trial_id].report(float(value), step)
            told.add(step)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if isinstance(self.metric, list) or trial_id in self._completed_trials:
            return super().on_trial_result(trial_id, result)
        self._record(trial_id, result)
        if self._time_attr in result:
            self._last_seen[trial_id] = int(result[self._time_attr])

    def on_trial_complete(self, trial_id: str, result: Optional[dict[str, Any]] = None,
                          error: bool = False) -> None:
        if isinstance(self.metric, list) or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        ot_trial = self._ot_trials[trial_id]
        ot_trial.set_user_attr("ray_trial_id", trial_id)
        value = (result or {}).get(self.metric)
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        if error:
            state, status = TrialState.FAIL, "error"
        elif result and result.get("status") == "diverged":
            state, status = TrialState.FAIL, "diverged"
        elif not result or not finite or self._time_attr not in result:
            state, status = TrialState.PRUNED, "stopped"
        else:
            iteration = int(result[self._time_attr])
            stopped_here = self._last_seen.get(trial_id) != iteration
            if stopped_here and iteration < self._max_t:
                self._record(trial_id, result)
                state, status = TrialState.PRUNED, "pruned"
            else:
                if stopped_here:
                    self._record(trial_id, result)
                state, status = TrialState.COMPLETE, "completed"
        if result and self._step_attr in result:
            ot_trial.set_user_attr("step_reached", self._step(result))
        ot_trial.set_user_attr("status", status)
        try:
            self._ot_study.tell(ot_trial, float(value) if state == TrialState.COMPLETE else None, state=state)
        except Exception as exc:  # e.g. the study already holds this trial as finished
            logger.warning("Optuna refused the result of trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)
        self._last_seen.pop(trial_id, None)
        self._steps_told.pop(trial_id, None)
