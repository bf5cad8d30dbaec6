"""Optuna as a Ray Tune searcher, told the truth about trials that the scheduler stopped.

Ray's own OptunaSearch (Ray 2.60) tells Optuna that a trial ASHA stopped is COMPLETE, with its
low-fidelity score, which TPE then ranks against fully trained trials as if they were equals (a
test keeps that fact in view: tests/test_search_searcher.py). This searcher is written on the public
APIs of both libraries instead (Tune's `Searcher`, Optuna's ask-and-tell; one private Optuna name, in
search/tune/compat.py, reopens a trial after a restart), and tells each trial as
`search.store.outcome.classify` decides, the same way the MLflow runs and the export see it:

- completed -> COMPLETE with its last value;
- pruned    -> PRUNED, its last value recorded as the intermediate value at the training step it
               reached (Optuna ranks pruned trials by how far they got);
- diverged, error -> FAIL.

The study lives in the search's Optuna storage (search/store/study.py), not in Tune's pickled state.
Intermediate values are recorded at matnet's training step (`step` in a result), so the study reads
in the same units as the training logs.
"""
from __future__ import annotations

import logging
import pickle
from typing import Any, Callable, Optional

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from ..store.keys import ITERATION_KEY, STEP_KEY, is_finite
from ..store.outcome import Outcome, classify
from ..store.study import StudyRef
from .compat import trial_of_number
from .study_wait import patiently

logger = logging.getLogger(__name__)

MAX_INVALID_DRAWS = 100
RAY_TRIAL_ATTR = "ray_trial_id"
# What each outcome is told to Optuna as.
OPTUNA_STATE = {Outcome.COMPLETED: TrialState.COMPLETE, Outcome.PRUNED: TrialState.PRUNED,
                Outcome.DIVERGED: TrialState.FAIL, Outcome.ERROR: TrialState.FAIL}


class OptunaSearcher(Searcher):
    """`space(trial)` is an Optuna define-by-run function (search.space.Space.suggest); `study` names
    the search's persistent study (search/store/study.py), which must exist.

    The study is the record: every ask, intermediate value and tell goes to its storage at once. So
    Tune's searcher state (save/restore) holds only which Optuna trial each Tune trial is, and the
    sampler (its seeded random state); on restore everything else is read back from the study."""

    def __init__(self, space: Callable[[optuna.Trial], Any], metric: str, mode: str, study: StudyRef,
                 sampler: Optional[optuna.samplers.BaseSampler] = None,
                 check: Optional[Callable[[dict[str, Any]], Any]] = None):
        super().__init__(metric=metric, mode=mode)
        self.space = space
        # check(params) raises ConfigError for drawn parameters that make no trainable config
        # (search.space.Space.valid_trial_config); such a draw is told to Optuna as FAIL and drawn
        # again, so no trial is started (and retried) only to fail its config check.
        self.check = check
        self.study_ref = study
        self.sampler = sampler
        self.trials: dict[str, int] = {}              # Tune trial id -> its Optuna trial number
        self._study: Optional[optuna.Study] = None
        self._connect()  # now: a study that cannot be reached fails before Tune starts

    @property
    def study(self) -> optuna.Study:
        return self._connect()

    def _connect(self) -> optuna.Study:
        """The study, connected on first use (also after unpickling); what was told before (steps
        reported, ends) is read back from it."""
        if self._study is None:
            self._study = self._db(lambda: self.study_ref.load(self.sampler))
            self._live: dict[str, optuna.Trial] = {}      # Tune trial id -> Optuna trial (this process)
            self.steps_told: dict[str, set[int]] = {}     # steps with an intermediate value, per trial
            self.told: set[str] = set()                   # trials whose end Optuna knows
            by_number = {t.number: t for t in self._db(lambda: self._study.get_trials(deepcopy=False))}
            for trial_id, number in self.trials.items():
                frozen = by_number.get(number)
                if frozen is None or frozen.state.is_finished():
                    self.told.add(trial_id)
                else:
                    self.steps_told[trial_id] = set(frozen.intermediate_values)
        return self._study

    def _fail_lost(self) -> None:
        """Trials the study holds as running that Tune's restored state does not know (asked after
        the last state Tune saved before the search stopped): Tune will not run them, so they FAIL."""
        known = set(self.trials.values())
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            number = frozen.number
            if number not in known:
                try:
                    lost = trial_of_number(self.study, number)
                    lost.set_user_attr("status", str(Outcome.ERROR))
                    lost.set_user_attr("error", "lost: the search stopped before Tune recorded this trial")
                    self.study.tell(lost, state=TrialState.FAIL)
                except Exception as exc:  # noqa: BLE001 - another process may have ended it
                    logger.warning("Optuna trial %d (lost by an interruption) not ended: %s", number, exc)

    # Tune pickles the searcher with the experiment (tuner.pkl): not the connection to the storage.
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_live", "steps_told", "told")}
        state["_study"] = None
        return state

    def _trial(self, trial_id: str) -> optuna.Trial:
        if trial_id not in self._live:
            self._live[trial_id] = self._db(lambda: trial_of_number(self.study, self.trials[trial_id]))
        return self._live[trial_id]

    def _db(self, call: Callable[[], Any]) -> Any:
        """A call to the study's storage, waited through while its database does not answer (study_wait.py)."""
        return patiently(self.study_ref.storage, call)

    # ---- Tune's Searcher interface ---------------------------------------------------------------
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: dict, **spec: Any) -> bool:
        return False  # the space, metric and mode are given at construction

    def suggest(self, trial_id: str) -> Optional[dict[str, Any]]:
        self._connect()
        if trial_id in self.trials:
            return dict(self._trial(trial_id).params)
        for _ in range(MAX_INVALID_DRAWS):
            trial = self._db(self.study.ask)
            self._db(lambda: self.space(trial))  # a parameter drawn before a lost connection is not drawn again
            problem = self._problem(trial.params)
            if problem is None:
                self.trials[trial_id], self._live[trial_id] = trial.number, trial
                self._db(lambda: trial.set_user_attr(RAY_TRIAL_ATTR, trial_id))  # which Tune trial it is
                return dict(trial.params)
            self._db(lambda: trial.set_user_attr("invalid", problem))
            self._db(lambda: self.study.tell(trial, state=TrialState.FAIL))
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
        self._connect()
        if trial_id in self.trials and trial_id not in self.told:
            self._record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict[str, Any]] = None, error: bool = False) -> None:
        self._connect()
        if trial_id not in self.trials or trial_id in self.told:
            return
        trial = self._trial(trial_id)
        outcome = classify(result, self.metric, errored=error)
        value = (result or {}).get(self.metric)
        if result:
            self._record(trial_id, result)  # the result the scheduler stopped it on never came through on_trial_result
        self._db(lambda: trial.set_user_attr("status", str(outcome)))
        if result and (STEP_KEY in result or ITERATION_KEY in result):
            self._db(lambda: trial.set_user_attr("step_reached", self._step(result)))
        try:
            self._db(lambda: self.study.tell(trial, float(value) if outcome is Outcome.COMPLETED else None,
                                             state=OPTUNA_STATE[outcome]))
        except Exception as exc:  # noqa: BLE001 - e.g. the study already holds this trial as finished
            logger.warning("Optuna refused the end of trial %s: %s", trial_id, exc)
        self.told.add(trial_id)
        self.steps_told.pop(trial_id, None)
        self._live.pop(trial_id, None)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"trials": dict(self.trials), "sampler": self.sampler}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.trials, self.sampler, self._study = dict(state["trials"]), state["sampler"], None
        self._fail_lost()

    # ---- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _step(result: dict[str, Any]) -> int:
        step = result.get(STEP_KEY)
        return int(step) if is_finite(step) else int(result[ITERATION_KEY])

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        """The result's value as Optuna's intermediate value at its training step (once per step)."""
        value = result.get(self.metric)
        if not is_finite(value) or (STEP_KEY not in result and ITERATION_KEY not in result):
            return
        step = self._step(result)
        told = self.steps_told.setdefault(trial_id, set())
        if step not in told:
            trial = self._trial(trial_id)
            self._db(lambda: trial.report(float(value), step))
            told.add(step)


def end_cut_short(study_ref: StudyRef, records: dict[str, Any], metric: str) -> int:
    """Tell the study how the trials that the search's budget cut short ended (Tune stops a search at
    its budget without ending its running trials through the searcher): as the ledger ruled
    (search/store/ledger.end_running), so the two agree. Returns how many it told."""
    study = study_ref.load()
    told = 0
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = records.get(frozen.user_attrs.get(RAY_TRIAL_ATTR, ""))
        if record is None or not record.ended:
            continue
        outcome = Outcome(record.outcome)
        trial = trial_of_number(study, frozen.number)
        trial.set_user_attr("status", str(outcome))
        value = record.last.get(metric) if outcome is Outcome.COMPLETED else None
        study.tell(trial, float(value) if value is not None else None, state=OPTUNA_STATE[outcome])
        told += 1
    return told
