"""A search tracked in MLflow: one parent run per search, one child run per trial (trial_runs.py),
the best checkpoint as a registered model (best.py, model.py).

Its part of search.json (`tracking.mlflow`): the tracking URI (uri.py: where it comes from, checked
before Ray starts, without a password), the MLflow experiment, and the parent run's id once made.
runs.py, callback.py's sink (trial_runs.py), best.py and model.py hold the MLflow details; nothing
outside this package imports MLflow.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import runs
from .context import dataset_input
from .uri import answers, checked_tracking_uri, tracking_uri


def quiet_and_patient() -> None:
    """MLflow's switches for a search, set in the driver before its first request (the tracking writer
    inherits them). MLflow prints two links for every run it ends on a tracking server (one per
    trial), and its experiment link opens the GenAI overview: the search prints the runs table's once,
    at its end. A tracking server that does not answer: MLflow retries a request 7 times by default,
    about 4 minutes with its backoff; 5 is about a minute, which still rides out a server's restart,
    and a server gone for good costs the search a minute, not 4 per request (trial_runs.py)."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # bars of kilobytes, in the search's log
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")


class MlflowTracker:
    section = "mlflow"  # the space file's section, search.json's and summary.json's key
    label = "MLflow"

    def __init__(self, state: dict[str, Any], settings: Any, info: Any):
        self.state = state            # search.json's tracking.mlflow (parent_run_id is written into it)
        self.settings = settings      # the space file's mlflow: section
        self.info = info              # search.json's SearchInfo: name, storage, strategy, ...
        self.gone = False             # the tracking server stopped answering: the search's end is not sent
        quiet_and_patient()

    # ---- search.json's part, checked before Ray starts --------------------------------------------
    @staticmethod
    def describe(settings: Any, uri: str | None, name: str, folder: str) -> dict[str, Any]:
        return {"tracking_uri": tracking_uri(uri, settings.tracking_uri), "experiment": settings.experiment or name,
                "parent_run_id": None}

    @staticmethod
    def check_resume(state: dict[str, Any], uri: str | None) -> None:
        checked_tracking_uri(state["tracking_uri"])
        if uri and checked_tracking_uri(uri) != state["tracking_uri"]:
            from ..store.errors import RunError
            raise RunError(f"this search logs to MLflow at {state['tracking_uri']}; resume it without "
                           f"--tracking-uri or with that URI")

    @staticmethod
    def for_export(state: dict[str, Any], uri: str | None) -> bool:
        """Whether an export logs here (its parent run exists), with `uri` instead of the search's own."""
        if uri:
            state["tracking_uri"] = checked_tracking_uri(uri)
        elif state.get("parent_run_id"):
            state["tracking_uri"] = checked_tracking_uri(state["tracking_uri"])
        return bool(state.get("parent_run_id"))

    @property
    def uri(self) -> str:
        return self.state["tracking_uri"]

    @property
    def parent_run_id(self) -> str | None:
        return self.state.get("parent_run_id")

    def _answers(self) -> bool:
        """Whether the tracking server answers now (asked before each of the search's last requests:
        a server gone for good would cost a minute of MLflow's retries, and a warning each, per request)."""
        if not self.gone and not answers(self.uri):
            self.gone = True
            print(f"MLflow: the tracking server at {self.uri} does not answer; the search's end is "
                  f"not logged there (trials.json and summary.json hold it; python -m search.export "
                  f"{self.info.storage}/{self.info.name} logs the best once it is back)", flush=True)
        return not self.gone

    # ---- the search ------------------------------------------------------------------------------
    def start(self, space: Any, folder_path: str, resume: bool) -> None:
        """The search's parent run: reopened on resume, else made, with what the search is."""
        if resume:
            if self.parent_run_id:
                runs.reopen_parent(self.uri, self.parent_run_id)
            return
        settings, info = space.settings, self.info
        self.state["parent_run_id"] = runs.start_parent(
            self.uri, self.state["experiment"], info.name,
            params={"space_file": space.path, "base": settings.base, "num_samples": info.num_samples,
                    "metric": settings.experiment.metric, "mode": settings.experiment.mode,
                    "strategy": info.strategy, "sampler_seed": settings.sampler.seed,
                    "max_concurrent": info.max_concurrent, "reports_per_trial": space.reports_per_trial(),
                    "storage": folder_path},
            tags={"mlflow.note.content": f"Search {info.name} of {space.path}; trials are the child runs."},
            artifacts=[space.path] if Path(space.path).is_file() else None,
            artifact_location=self.settings.artifact_location,
            dataset=dataset_input(space.base_config().data))

    def sink(self, space: Any) -> tuple[str, str, dict[str, Any]]:
        """What the tracking writer opens for this back-end: the trials' child runs (trial_runs.py)."""
        return (self.label, "search.tracking.trial_runs:TrialRuns",
                {"tracking_uri": self.uri, "parent_run_id": self.parent_run_id,
                 "sample_images": self.settings.sample_images})

    def log_best(self, summary: dict[str, Any], figures: list[Path], study_files: list[Path],
                 importances: dict[str, float], checkpoint: Path) -> dict[str, Any]:
        """The export on the parent run; returns summary.json's `mlflow` part (with the model's URIs)."""
        from .best import log_best
        out = {"tracking_uri": self.uri, "parent_run_id": self.parent_run_id, "experiment": self.state["experiment"]}
        if not self._answers():
            return out
        registered = self.settings.registered_model
        name = self.state["experiment"] if registered is None else registered
        return {**out, **log_best(self.uri, self.parent_run_id, summary, figures, study_files, importances,
                                  checkpoint, name)}

    def log_summary(self, text: str) -> None:
        from .best import log_summary
        if self._answers():
            log_summary(self.uri, self.parent_run_id, text)

    def close(self, status: str) -> None:
        """No run left RUNNING (status: FINISHED, KILLED when interrupted, or FAILED)."""
        if self.parent_run_id and self._answers():
            runs.close_search(self.uri, self.parent_run_id, status,
                              note={"FINISHED": "finished", "KILLED": "interrupted"}.get(status, "failed"))

    def where(self) -> str | None:
        if not self.parent_run_id or not self._answers():
            return None  # said once, in _answers
        return f"mlflow: {runs.runs_table_hint(self.uri, self.parent_run_id)}"

    @staticmethod
    def best_lines(part: dict[str, Any]) -> list[str]:
        """What the export prints of its summary.json part."""
        if part.get("champion"):
            return [f"registered model {part['registered_model']}: champion {part['champion']}"]
        return []
