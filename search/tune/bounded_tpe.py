"""Optuna's TPE over a bounded history: past `best + recent` finished trials, the sampler sees the
`best` best finished trials and the `recent` most recent ones (and every running one, for the
constant liar), so a suggest costs the same at 10,000 trials as at a few hundred.

Why it keeps what TPE uses: TPE splits the finished trials into a "good" group of at most 25
(optuna's default_gamma: min(ceil(0.1 n), 25)) and the rest; the good group is the best trials,
which are kept whole (complete trials by value; pruned ones as TPE ranks them: the step reached, then
the value there), and the rest's Parzen estimator already weights old trials down (default_weights),
so dropping the oldest of the rest changes little. Under the threshold the sampler sees every trial
and suggests exactly what TPESampler does. Whether the bound costs quality is measured, not assumed:
docs/strategies.md ("A bounded TPE history").

Optuna has no option for this (its samplers read `study._get_trials`); the study view below is the one
place the project stands in for that private method (search/tune/compat.py lists it).
"""
from __future__ import annotations

import bisect
import heapq
import math
from typing import Any

import optuna
from optuna.samplers import TPESampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _pruned_rank(trial: Any, minimize: bool) -> tuple[float, float]:
    """TPE's own order of pruned trials: the furthest first, then the best value there."""
    if not trial.intermediate_values:
        return 1.0, 0.0
    step, value = max(trial.intermediate_values.items())
    if math.isnan(value):
        return -step, math.inf
    return -step, value if minimize else -value


def _find(trials: list[Any], number: int) -> Any:
    """The trial numbered `number` in `trials` (sorted by number), or None."""
    i = bisect.bisect_left(trials, number, key=lambda t: t.number)
    return trials[i] if i < len(trials) and trials[i].number == number else None


class History:
    """The bounded history of one study, kept up to date as its trials finish, so that a look costs
    the trials numbered since the last look and the few still pending, not all of them: the `best`
    best complete and `best` best pruned trials (heaps), and at each look the `recent` most recently
    numbered finished ones and every unfinished one. Trials come sorted by number (Optuna's storages
    keep that order); a look may be filtered by state (Optuna's samplers ask for finished trials only,
    or for finished and running ones), so a number a look lacks is pending until a look shows it ended."""

    def __init__(self, best: int, recent: int, minimize: bool):
        self.best, self.recent, self.sign = best, recent, 1.0 if minimize else -1.0
        self._complete: list[tuple[float, int, Any]] = []   # (-score, number, trial): the worst on top
        self._pruned: list[tuple[tuple[float, float], int, Any]] = []
        self._ranked: set[int] = set()   # finished trials already ranked
        self._seen_upto = -1             # every number up to this is ranked, ended unranked, or pending
        self._pending: set[int] = set()  # numbers up to _seen_upto not known to have ended

    def _rank(self, trial: Any) -> None:
        self._ranked.add(trial.number)
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            heap, score = self._complete, -self.sign * trial.value
        elif trial.state == TrialState.PRUNED:
            rank = _pruned_rank(trial, self.sign > 0)
            heap, score = self._pruned, (-rank[0], -rank[1])
        else:
            return
        entry = (score, trial.number, trial)
        if len(heap) < self.best:
            heapq.heappush(heap, entry)
        elif entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)

    def _ended(self, trial: Any) -> bool:
        """Rank `trial` if it finished; whether it has ended (finished or failed)."""
        if trial.state in FINISHED:
            self._rank(trial)
            return True
        return trial.state == TrialState.FAIL

    def _update(self, trials: list[Any]) -> None:
        """Rank what ended since the last look: the pending numbers this look shows, and the new ones."""
        for number in list(self._pending):
            trial = _find(trials, number)
            if trial is not None and self._ended(trial):
                self._pending.discard(number)
        start = bisect.bisect_right(trials, self._seen_upto, key=lambda t: t.number)
        expected = self._seen_upto + 1
        for t in trials[start:]:
            self._pending.update(range(expected, t.number))  # not in this look: running, or failed
            expected = t.number + 1
            if not self._ended(t):
                self._pending.add(t.number)
        self._seen_upto = max(self._seen_upto, expected - 1)

    def look(self, trials: list[Any]) -> list[Any]:
        """`trials` as the bounded history sees them (the same states, in their order): all of them while
        at most best + recent have finished."""
        self._update(trials)
        if len(self._ranked) <= self.best + self.recent:
            return trials
        keep: dict[int, Any] = {}
        found = 0
        for t in reversed(trials):  # the most recent finished, back to `recent` of them
            if t.state in FINISHED:
                if found >= self.recent:
                    break
                found += 1
            keep[t.number] = t
        # the unfinished older than those, and the best: each if this look holds it (its states)
        for number in (*self._pending, *(n for _, n, _ in self._complete), *(n for _, n, _ in self._pruned)):
            if number not in keep and (trial := _find(trials, number)) is not None:
                keep[number] = trial
        return [keep[n] for n in sorted(keep)]


def bounded(trials: list[Any], best: int, recent: int, minimize: bool) -> list[Any]:
    """One look at `trials` through a fresh History (tests, and a caller without a sampler)."""
    return History(best, recent, minimize).look(trials)


class BoundedStudy:
    """A read-only view of a study whose trials are seen through a History; everything else is the
    study's own."""

    def __init__(self, study: Any, history: History):
        self._study, self._history = study, history

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[Any]:  # what Optuna's samplers read
        return self._history.look(list(self._study._get_trials(*args, **kwargs)))

    def get_trials(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self._history.look(list(self._study.get_trials(*args, **kwargs)))

    @property
    def trials(self) -> list[Any]:
        return self.get_trials()


class BoundedTPESampler(TPESampler):
    """TPESampler whose every look at the study goes through a BoundedStudy."""

    def __init__(self, *, best: int, recent: int, **tpe: Any):
        super().__init__(**tpe)
        self.best, self.recent = best, recent
        self._history: History | None = None  # of the one study a sampler serves (as Optuna's own do)

    def _view(self, study: Any) -> Any:
        if self._history is None:
            minimize = len(study.directions) > 1 or study.direction == StudyDirection.MINIMIZE
            self._history = History(self.best, self.recent, minimize)
        return BoundedStudy(study, self._history)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return super().infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        return super().sample_independent(self._view(study), trial, param_name, param_distribution)


__all__ = ["BoundedStudy", "BoundedTPESampler", "History", "bounded", "optuna"]
