"""How a trial ended: one enum, one classifier.

The Optuna searcher (what Optuna is told), the MLflow callback (the child run's status) and the
trial ledger that the export and the final table read all ask `classify`, with the same evidence:
the trial's last result, whether it failed, and whether Tune has ended it. So the three can never
disagree about a trial (tests/test_search_outcome.py makes them try).

- error:     the trial raised (a crash it did not recover from within experiment.max_failures);
- diverged:  its loss went non-finite too often (matnet.train raised NonFiniteLossError; the
             trainable reported `status: diverged`);
- completed: it trained its whole budget: its last result is matnet.train's last evaluation
             (`final: true`, see matnet/train.py) and holds a finite value of the search metric;
- pruned:    it ended before that: the scheduler (ASHA) stopped it, or the search's time budget ran
             out; also a trial whose last result has no finite value of the metric (nothing to rank
             it by as a finished trial);
- running:   Tune has not ended it (it runs, waits, or the search was interrupted).
"""
from __future__ import annotations

import enum
from typing import Any, Mapping

from .keys import FINAL_KEY, STATUS_KEY, is_finite


class Outcome(str, enum.Enum):
    COMPLETED = "completed"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    ERROR = "error"
    RUNNING = "running"

    @property
    def ended(self) -> bool:
        return self is not Outcome.RUNNING

    def __str__(self) -> str:  # "pruned", not "Outcome.PRUNED", in tags, tables and JSON
        return self.value


def classify(last_result: Mapping[str, Any] | None, metric: str, *, errored: bool = False,
             ended: bool = True) -> Outcome:
    """The outcome of a trial whose last reported result is `last_result` (None: it reported nothing),
    ranked by `metric`, that raised (`errored`), and that Tune has ended (`ended`) or not."""
    last = last_result or {}
    if errored:
        return Outcome.ERROR
    if last.get(STATUS_KEY) == Outcome.DIVERGED.value:
        return Outcome.DIVERGED
    if not ended:
        return Outcome.RUNNING
    if last.get(FINAL_KEY) is True and is_finite(last.get(metric)):
        return Outcome.COMPLETED
    return Outcome.PRUNED
