"""Tracking a search's trials, behind one small object per back-end (MLflow: mlflow_tracker.py).

    tracker_for(space, info)   the search's tracker: MLflow when the space's mlflow: section is
                               enabled, else one that records nothing

A tracker has start / callback / log_best / log_summary / close / where (mlflow_tracker.py says what
each does); search.run and search.export call only those. A second back-end is one module with such
a class, its section in search/space/schema.py, and a line in BACKENDS below.

    runs.py       MLflow's parent run of a search and its child runs: create, reopen, close
    callback.py   the Ray Tune callback that logs every trial as a child run (imports Ray)
    best.py       the export's part: the best checkpoint, its IWAE figures and the summary
    model.py      the best checkpoint as a registered MLflow model; resolver.py opens models:/ URIs
    uri.py        where the tracking URI comes from, checked before Ray starts
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .mlflow_tracker import MlflowTracker

# The space file's section of each back-end, and its tracker class.
BACKENDS = {"mlflow": MlflowTracker}


class NoTracker:
    """A search that logs nowhere but its own folder."""
    parent_run_id = None

    def start(self, space: Any, folder_path: str, resume: bool) -> None:
        pass

    def callback(self, space: Any, ledger: Any) -> Any:
        return None

    def log_best(self, summary: dict[str, Any], figures: list[Path], study_files: list[Path],
                 importances: dict[str, float], checkpoint: Path) -> dict[str, Any]:
        return {}

    def log_summary(self, text: str) -> None:
        pass

    def close(self, status: str) -> None:
        pass

    def where(self) -> str | None:
        return None


def tracker_for(settings: Any, info: Any) -> Any:
    """The tracker of a search whose space file has `settings` (SpaceFile) and whose search.json is `info`."""
    for section, tracker in BACKENDS.items():
        if getattr(settings, section).enabled:
            return tracker(info, getattr(settings, section))
    return NoTracker()
