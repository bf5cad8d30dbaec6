"""A search tracked in MLflow, behind the four calls search.run and search.export make:

    tracker.start(space, folder, resume)   the parent run: made (a new search) or reopened (--resume)
    tracker.callback(ledger)               the Tune callback that logs every trial as a child run
    tracker.log_best(...)                  the export: the best's figures, model and summary
    tracker.close(status)                  no run left RUNNING, whatever stopped the search

plus `where()`, the line that tells a user where to see the runs. runs.py, callback.py, best.py and
model.py hold the MLflow details; nothing outside this package imports MLflow.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import runs
from .context import dataset_input
from .uri import answers

SECTION = "mlflow"  # the space file's section that configures this back-end (search/space/schema.py)


class MlflowTracker:
    def __init__(self, info: Any, settings: Any):
        self.info = info              # search.json's SearchInfo: tracking_uri, parent_run_id, ...
        self.settings = settings      # the space file's mlflow: section
        self._callback: Any = None
        self.gone = False             # the tracking server stopped answering: the search's end is not sent

    def _answers(self) -> bool:
        """Whether the tracking server answers now (asked before each of the search's last requests:
        a server gone for good would cost a minute of MLflow's retries, and a warning each, per request)."""
        if not self.gone and not answers(self.info.tracking_uri):
            self.gone = True
            print(f"MLflow: the tracking server at {self.info.tracking_uri} does not answer; the search's end is "
                  f"not logged there (trials.json and summary.json hold it; python -m search.export "
                  f"{self.info.storage}/{self.info.name} logs the best once it is back)", flush=True)
        return not self.gone

    @property
    def parent_run_id(self) -> str | None:
        return self.info.parent_run_id

    def start(self, space: Any, folder_path: str, resume: bool) -> None:
        """The search's parent run: reopened on resume, else made, with what the search is."""
        if resume:
            if self.parent_run_id:
                runs.reopen_parent(self.info.tracking_uri, self.parent_run_id)
            return
        settings, info = space.settings, self.info
        self.info.parent_run_id = runs.start_parent(
            info.tracking_uri, info.mlflow_experiment, info.name,
            params={"space_file": space.path, "base": settings.base, "num_samples": info.num_samples,
                    "metric": settings.experiment.metric, "mode": settings.experiment.mode,
                    "strategy": info.strategy, "sampler_seed": settings.sampler.seed,
                    "max_concurrent": info.max_concurrent, "reports_per_trial": space.reports_per_trial(),
                    "storage": folder_path},
            tags={"mlflow.note.content": f"Search {info.name} of {space.path}; trials are the child runs."},
            artifacts=[space.path] if Path(space.path).is_file() else None,
            artifact_location=self.settings.artifact_location,
            dataset=dataset_input(space.base_config().data))

    def callback(self, space: Any, ledger: Any) -> Any:
        from .callback import MlflowCallback
        self._callback = MlflowCallback(self.info.tracking_uri, self.parent_run_id, space, self.info.name, ledger)
        return self._callback

    def log_best(self, summary: dict[str, Any], figures: list[Path], study_files: list[Path],
                 importances: dict[str, float], checkpoint: Path) -> dict[str, Any]:
        """The export on the parent run; returns the model's URIs (summary.json keeps them)."""
        from .best import log_best
        if not self._answers():
            return {}
        registered = self.settings.registered_model
        name = self.info.mlflow_experiment if registered is None else registered
        return log_best(self.info.tracking_uri, self.parent_run_id, summary, figures, study_files, importances,
                        checkpoint, name)

    def log_summary(self, text: str) -> None:
        from .best import log_summary
        if not self._answers():
            return
        log_summary(self.info.tracking_uri, self.parent_run_id, text)

    def close(self, status: str) -> None:
        """status: FINISHED, KILLED (interrupted) or FAILED."""
        if self._callback is not None:
            self._callback.on_experiment_end([])  # results still batched: logged before the runs end
        from .writer import close_open  # not at import: `python -m search.tracking.writer` imports this package
        close_open()  # also a restored search's writer (Tune's copy of the callback), or one a fault left open
        if self.parent_run_id and self._answers():
            runs.close_search(self.info.tracking_uri, self.parent_run_id, status,
                              note={"FINISHED": "finished", "KILLED": "interrupted"}.get(status, "failed"))

    def where(self) -> str | None:
        if not self._answers():
            return None  # said once, in _answers
        return f"mlflow: {runs.runs_table_hint(self.info.tracking_uri, self.parent_run_id)}"
