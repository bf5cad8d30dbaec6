"""The MLflow child runs of a search's trials, as written by the tracking writer (writer.py): what the
Tune callback (callback.py) decides, this file turns into MLflow requests.

- A trial's child run is found again by its `trial_id` tag under the parent (the existing children
  are listed once, at the start), so a resumed or restarted trial never gets a second child run.
- Iterations already logged are not logged twice: for every run that had not finished, the last
  iteration MLflow holds is read at the start (a search interrupted and resumed, or a trial restarted
  from a checkpoint, reports some iterations again).
- Results are logged batched: whatever arrived since the last flush goes as one `log_batch` request
  per trial (what one request per result costs grows with the results per second: mlflow#5269).
- A finished trial gets its last metrics and outcome tags, its figures (samples or imputations,
  per-layer KL) under figures/, its training history (metrics.jsonl, Figure 4 as kl_per_layer.png)
  under training/, and its end.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from matnet.folders import RUN_METRICS, RUN_PLOT

from ..store.keys import ITERATION_KEY, kl_per_layer
from ..store.outcome import Outcome
from .context import dataset_input, inherited_tags
from .runs import (MAX_BATCH_METRICS, SEARCH_TAG, STATUS_TAG, TRIAL_TAG, children, chunks, client, flat_config,
                   log_params)

logger = logging.getLogger(__name__)

# A child run's MLflow status for each outcome.
MLFLOW_STATUS = {Outcome.COMPLETED: "FINISHED", Outcome.PRUNED: "FINISHED", Outcome.DIVERGED: "FAILED",
                 Outcome.ERROR: "FAILED"}


class TrialRuns:
    def __init__(self, tracking_uri: str, parent_run_id: str, space: Any, search_name: str, sample_images: int):
        self.parent_run_id = parent_run_id
        self.space = space
        self.search_name = search_name
        self.sample_images = sample_images
        self.client = client(tracking_uri)
        parent = self.client.get_run(parent_run_id)
        self.experiment_id = parent.info.experiment_id
        self.context = inherited_tags(parent.data.tags)  # the parent's user, source, git commit
        self.runs: dict[str, str] = {}        # trial id -> child run id
        self.last_iter: dict[str, int] = {}   # trial id -> last training_iteration logged or queued
        self.pending: dict[str, list[Any]] = {}  # trial id -> metrics to log
        for run in children(tracking_uri, parent_run_id):
            trial_id = run.data.tags.get(TRIAL_TAG)
            if not trial_id or trial_id in self.runs:
                continue
            self.runs[trial_id] = run.info.run_id
            if run.info.status != "FINISHED":  # its trial can report again: what does MLflow hold?
                history = self.client.get_metric_history(run.info.run_id, ITERATION_KEY)
                self.last_iter[trial_id] = int(max((m.value for m in history), default=0))

    def safely(self, what: str, fn, *args: Any) -> Any:
        """A tracking-server hiccup is logged, never allowed to stop the search."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - tracking is best effort for the search itself
            logger.warning("MLflow: could not %s: %s", what, str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None

    # ---- what the callback sends (writer.py calls these by name) ---------------------------------
    def start(self, trial_id: str, drawn: dict[str, Any]) -> None:
        created = trial_id not in self.runs
        run_id = self._child(trial_id, drawn)
        if not created and self.client.get_run(run_id).info.status != "RUNNING":  # a resumed trial's run
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, STATUS_TAG, str(Outcome.RUNNING))

    def recover(self, trial_id: str, drawn: dict[str, Any], failures: int) -> None:
        self.client.set_tag(self._child(trial_id, drawn), "restarts", str(failures))

    def result(self, trial_id: str, drawn: dict[str, Any], iteration: int, metrics: list[Any]) -> None:
        """One result's metrics (mlflow Metric entities), queued unless that iteration was logged."""
        self._child(trial_id, drawn)
        if iteration <= self.last_iter.get(trial_id, 0):
            return  # logged before an interruption or a restart: not twice
        self.last_iter[trial_id] = iteration
        self.pending.setdefault(trial_id, []).extend(metrics)

    def exploit(self, trial_id: str, drawn: dict[str, Any], text: str) -> None:
        """A PBT exploitation as the tag pbt.exploit.N; pbt.exploits counts them."""
        from mlflow.entities import RunTag
        run_id = self._child(trial_id, drawn)
        tags = self.client.get_run(run_id).data.tags
        if any(v == text for k, v in tags.items() if k.startswith("pbt.exploit.")):
            return  # told before an interruption
        n = int(tags.get("pbt.exploits", "0"))
        self.client.log_batch(run_id, tags=[RunTag(f"pbt.exploit.{n + 1}", text[:5000]),
                                            RunTag("pbt.exploits", str(n + 1))])

    def finish(self, trial_id: str, drawn: dict[str, Any], outcome: str, finals: list[Any], tags: dict[str, str],
               checkpoint: Any, last: dict[str, Any], title: str) -> None:
        """The trial's last metrics and tags, its figures and its end."""
        from mlflow.entities import RunTag
        self.flush(trial_id)
        run_id = self._child(trial_id, drawn)
        self.client.log_batch(run_id, metrics=finals, tags=[RunTag(k, v) for k, v in tags.items()])
        if checkpoint is not None:
            self.safely(f"log the figures of trial {trial_id}", self._log_figures, run_id, checkpoint, last,
                        Outcome(outcome), title)
        self.client.set_terminated(run_id, MLFLOW_STATUS[Outcome(outcome)])

    def flush(self, trial_id: str | None = None) -> None:
        """Log what waits (one trial's, or all), as one request per trial (per 1,000 metrics)."""
        for tid in [trial_id] if trial_id is not None else list(self.pending):
            metrics = self.pending.pop(tid, [])
            for chunk in chunks(metrics, MAX_BATCH_METRICS):
                self.safely(f"log the results of trial {tid}", self.client.log_batch, self.runs[tid], chunk)

    # ---- helpers ---------------------------------------------------------------------------------
    def _child(self, trial_id: str, drawn: dict[str, Any]) -> str:
        """The trial's child run, created (with its parameters and data set) the first time."""
        if trial_id in self.runs:
            return self.runs[trial_id]
        run = self.client.create_run(self.experiment_id, run_name=f"{self.search_name}/{trial_id}", tags={
            **self.context, "mlflow.parentRunId": self.parent_run_id, TRIAL_TAG: trial_id,
            SEARCH_TAG: self.search_name, STATUS_TAG: str(Outcome.RUNNING)})
        self.runs[trial_id] = run.info.run_id
        try:
            config = self.space.trial_config(dict(drawn))
            params = {**flat_config(config.to_dict()), **drawn}
            self.client.log_inputs(run.info.run_id, datasets=[dataset_input(config.data)])
        except Exception as e:  # noqa: BLE001 - the drawn values alone are still worth logging
            params = dict(drawn)
            logger.warning("trial %s: config not rebuilt for MLflow (%s)", trial_id, e)
        log_params(self.client, run.info.run_id, params, {"searched_params": ",".join(sorted(drawn))[:5000]})
        return run.info.run_id

    def _log_figures(self, run_id: str, checkpoint: Any, last: dict[str, Any], outcome: Outcome, title: str) -> None:
        from matnet.figures import checkpoint_figures, history_figure

        kl = None if outcome is Outcome.DIVERGED else kl_per_layer(last)  # diverged: the last good checkpoint's own
        with tempfile.TemporaryDirectory() as tmp, checkpoint.as_directory() as folder:
            for f in checkpoint_figures(folder, Path(tmp), self.sample_images, title, kl):
                self.client.log_artifact(run_id, str(f), "figures")
            # The trial's training history, kept in its checkpoints (search/tune/trainable.py), and Figure 4
            # drawn from it here (the trial does not redraw it at every report).
            if (Path(folder) / RUN_METRICS).is_file():
                self.client.log_artifact(run_id, str(Path(folder) / RUN_METRICS), "training")
                (Path(tmp) / "training").mkdir()
                figure = history_figure(folder, Path(tmp) / "training" / RUN_PLOT)
                if figure is not None:
                    self.client.log_artifact(run_id, str(figure), "training")
