"""What a user sees while a search runs (Tune's own output is off: its status table leaves out the
metric being optimised, and it prints a box of 30 lines for every result):

- a line when a trial ends: how it ended, at which step, its best value, and the search's best so far;
  for one that failed, what most likely happened (tune/faults.py) and where its traceback is;
- a line when a failed trial is retried: what most likely happened, and from which step it goes on;
- on a terminal, one status line redrawn in place (trials running and ended, the best so far and its
  trial, the time); in a log (a file, `ray job logs`), that line printed once a minute instead.

The status line fits the terminal (it is redrawn in place, so it must not wrap); the other lines are
printed whole, so that a failed trial's line keeps the path of its traceback (a terminal wraps it).
"""
from __future__ import annotations

import shutil
import sys
import time
from typing import Any, Optional, TextIO

from ray.tune import Callback

from ..store.keys import NODE_KEY, STEP_KEY, better, is_finite
from ..store.outcome import classify
from ..cli import clock
from .faults import describe, last_failure_text, node_gone

LOG_EVERY_S = 60.0
REDRAW_EVERY_S = 0.5


def say(line: str, stream: Optional[TextIO] = None) -> None:
    """A line of the search's own, also while the status line is drawn on a terminal (the status line
    is drawn again at the next step)."""
    out = stream or sys.stdout
    out.write(("\r\033[K" if out.isatty() else "") + line + "\n")
    out.flush()


class Progress(Callback):
    def __init__(self, metric: str, mode: str, total: int, stream: Optional[TextIO] = None, max_failures: int = 0):
        self.metric, self.mode, self.total = metric, mode, total
        self.max_failures = max_failures
        self.stream = stream
        self.started = time.monotonic()
        self.best: Optional[float] = None
        self.best_at: tuple[str, Any] = ("", None)
        self.running: set[str] = set()
        self.ended = 0
        self._drawn_at = 0.0
        self._status_shown = False

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks: not the stream
        return {**self.__dict__, "stream": None}

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout

    @property
    def tty(self) -> bool:
        return self.out.isatty()

    def _width(self) -> int:
        return max(60, shutil.get_terminal_size((100, 24)).columns - 1)

    def _status(self) -> str:
        best = ("-" if self.best is None else
                f"{self.best:.2f} ({self.best_at[0]}, step {self.best_at[1]})")
        return (f"search: {len(self.running)} running, {self.ended}/{self.total} ended; best {self.metric} {best}; "
                f"{clock(time.monotonic() - self.started)}")

    def _print(self, line: str) -> None:
        if self.tty and self._status_shown:
            self.out.write("\r\033[K")
        self.out.write(line + "\n")
        self._status_shown = False
        self._redraw(force=True)

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or now - self._drawn_at >= REDRAW_EVERY_S:
                self.out.write("\r\033[K" + self._status()[:self._width()])
                self.out.flush()
                self._drawn_at, self._status_shown = now, True
        elif now - self._drawn_at >= LOG_EVERY_S:
            self.out.write(self._status() + "\n")
            self.out.flush()
            self._drawn_at = now

    # ---- Tune hooks ------------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self.started = time.monotonic()
        self._drawn_at = time.monotonic()  # the first status line in a log after a minute
        self._counted = False

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._redraw()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if is_finite(value) and better(float(value), self.best, self.mode):
            self.best, self.best_at = float(value), (trial.trial_id, result.get(STEP_KEY))
        self._redraw()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        failure = describe(last_failure_text(trial.error_file),
                           node_lost=node_gone((trial.last_result or {}).get(NODE_KEY)))
        step = (trial.last_result or {}).get(STEP_KEY)
        where = f"from its checkpoint at step {step}" if trial.checkpoint is not None and step else "from the start"
        limit = getattr(self, "max_failures", 0)  # a search saved before this attribute
        self._print(f"trial {trial.trial_id}: {failure.cause}; retried {where} (restart {trial.num_failures}"
                    + (f" of {limit})" if limit > 0 else ")"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, errored=True)

    def _end(self, trial: Any, errored: bool) -> None:
        self.running.discard(trial.trial_id)
        self.ended += 1
        last = trial.last_result or {}
        outcome = classify(last, self.metric, errored=errored)
        value = last.get(self.metric)
        shown = f"{value:.2f}" if is_finite(value) else "-"
        lead = " (the best so far)" if self.best_at[0] == trial.trial_id else ""
        if errored:  # why, and where the traceback is: the cause first, the line is cut to the terminal
            failure = describe(last_failure_text(trial.error_file), node_lost=node_gone(last.get(NODE_KEY)))
            lead = f"; {failure.cause}; traceback in {trial_error_file(trial)}"
        self._print(f"[{self.ended}/{self.total}] trial {trial.trial_id} {outcome} at step {last.get(STEP_KEY, '-')}: "
                    f"{self.metric} {shown}{lead}")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if not getattr(self, "_counted", True):  # a resumed search: the trials that ended before count
            self.ended = sum(1 for t in trials if t.status in ("TERMINATED", "ERROR"))
            self.running = {t.trial_id for t in trials if t.status == "RUNNING"}
            self._counted = True
        self._redraw()

    def clear(self) -> None:
        """Take the status line off the terminal (before the search's last lines)."""
        if self.tty and self._status_shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self._status_shown = False

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.clear()


def trial_error_file(trial: Any) -> str:
    """Where a trial's error.txt is kept: its folder in the search's storage (Tune copies it there)."""
    folder = getattr(trial, "path", None) or getattr(trial, "local_path", None) or ""
    return f"{folder}/error.txt" if folder else "its error.txt"
