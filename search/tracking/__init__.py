"""Tracking a search's trials, behind one small object per back-end: MLflow (mlflow_tracker.py) and
TensorBoard (tensorboard_tracker.py), each turned on by its section of the space file (`mlflow:`,
`tensorboard:`, both `enabled: true` or false), alone or together.

    describe(settings, uri, name, folder)   a new search's `tracking` part of search.json, checked
                                            before Ray starts
    check_resume(info, uri)                 a resumed search's part checked against --tracking-uri
    tracker_for(settings, info)             the search's trackers (Trackers: each call goes to every one)
    for_export(settings, info, uri)         the trackers an export logs the best to

A back-end's class has `section` and `label`, the static `describe`, `check_resume`, `for_export`
and `best_lines`, and start / sink / log_best / log_summary / close / where; search.run and
search.export call only the functions above and Trackers. Its trials are written by the tracking
writer (writer.py), a process that feeds every back-end's sink (sinks.py) the same messages from one
Tune callback (callback.py). A third back-end is a tracker class, a sink class, its section in
search/space/schema.py and a line in BACKENDS below (docs/layout.md).

    runs.py, trial_runs.py, best.py, model.py, resolver.py, uri.py, context.py    MLflow's
    trial_events.py, tensorboard_events.py                                         TensorBoard's
    metrics.py, painters.py                                                       shared by both
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .mlflow_tracker import MlflowTracker
from .tensorboard_tracker import TensorboardTracker

# Each back-end by its section of the space file (and its key in search.json and summary.json).
BACKENDS = {tracker.section: tracker for tracker in (MlflowTracker, TensorboardTracker)}


def _enabled(settings: Any) -> list[str]:
    return [section for section in BACKENDS if getattr(settings, section).enabled]


def describe(settings: Any, uri: str | None, name: str, folder: str) -> dict[str, dict[str, Any]]:
    """search.json's `tracking` of a new search: each enabled back-end's state. `uri`: --tracking-uri."""
    return {section: BACKENDS[section].describe(getattr(settings, section), uri, name, folder)
            for section in _enabled(settings)}


def check_resume(info: Any, uri: str | None) -> None:
    for section, state in info.tracking.items():
        BACKENDS[section].check_resume(state, uri)


def tracker_for(settings: Any, info: Any) -> "Trackers":
    """The trackers of a search whose space file has `settings` and whose search.json is `info`."""
    return Trackers([BACKENDS[section](state, getattr(settings, section), info)
                     for section, state in info.tracking.items() if section in BACKENDS])


def for_export(settings: Any, info: Any, uri: str | None) -> "Trackers":
    """The trackers an export logs to: those the search logged to (MLflow: with `uri` instead of its own)."""
    return Trackers([BACKENDS[section](state, getattr(settings, section), info)
                     for section, state in info.tracking.items()
                     if section in BACKENDS and BACKENDS[section].for_export(state, uri)])


class Trackers:
    """A search's trackers as one: every call goes to each (none: a search that logs only to its folder)."""

    def __init__(self, trackers: list[Any]):
        self.trackers = trackers
        self._callback: Any = None

    def start(self, space: Any, folder_path: str, resume: bool) -> None:
        for tracker in self.trackers:
            tracker.start(space, folder_path, resume)

    def callback(self, space: Any, ledger: Any, search_name: str) -> Any:
        """The Tune callback that logs every trial to each back-end (None: no back-end)."""
        if not self.trackers:
            return None
        from .callback import TrackingCallback  # imports Ray
        self._callback = TrackingCallback([t.sink(space) for t in self.trackers], space, search_name, ledger)
        return self._callback

    def log_best(self, summary: dict[str, Any], figures: list[Path], study_files: list[Path],
                 importances: dict[str, float], checkpoint: Path) -> dict[str, Any]:
        """The export, logged to each; summary.json's part of each back-end, by its section."""
        return {t.section: t.log_best(summary, figures, study_files, importances, checkpoint) for t in self.trackers}

    def log_summary(self, text: str) -> None:
        for tracker in self.trackers:
            tracker.log_summary(text)

    def close(self, status: str) -> None:
        """Everything sent to the writer written, then each back-end's end (status: FINISHED, KILLED,
        FAILED); one back-end that cannot close costs a warning, not the others' end."""
        if self._callback is not None:
            self._callback.on_experiment_end([])  # results still batched: logged before the runs end
        from .writer import close_open  # not at import: `python -m search.tracking.writer` imports this package
        close_open()  # also a restored search's writer (Tune's copy of the callback), or one a fault left open
        for tracker in self.trackers:
            try:
                tracker.close(status)
            except Exception as err:  # noqa: BLE001 - never hide the search's own outcome
                print(f"warning: {tracker.label}: the search's tracking not closed ({str(err).splitlines()[0]})",
                      file=sys.stderr)

    def where(self) -> list[str]:
        """Where a user sees the trials: a line per back-end."""
        return [line for line in (t.where() for t in self.trackers) if line]

    def best_lines(self, summary: dict[str, Any]) -> list[str]:
        return [line for t in self.trackers for line in t.best_lines(summary.get(t.section, {}))]
