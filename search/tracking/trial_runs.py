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
from typing import Any

from ..store.keys import ITERATION_KEY, kl_per_layer
from ..store.outcome import Outcome
from .context import dataset_input, inherited_tags
from .painters import Painters, workers
from .runs import (MAX_BATCH_METRICS, SEARCH_TAG, STATUS_TAG, TRIAL_TAG, children, chunks, client, flat_config,
                   log_params)

logger = logging.getLogger(__name__)

# A child run's MLflow status for each outcome.
MLFLOW_STATUS = {Outcome.COMPLETED: "FINISHED", Outcome.PRUNED: "FINISHED", Outcome.DIVERGED: "FAILED",
                 Outcome.ERROR: "FAILED"}


# How a request to a tracking server that is not there fails, once MLflow's retries are spent, and
# what a person is told of it.
UNANSWERED = {"Connection refused": "connection refused", "Read timed out": "no answer in time",
              "Connection aborted": "connection cut", "Failed to establish a new connection": "no connection",
              "Max retries exceeded": "no answer"}


def unanswered(error: BaseException) -> str | None:
    """Why a request of `error` had no answer (its words for a person), or None: it had one."""
    return next((why for words, why in UNANSWERED.items() if words in str(error)), None)


class TrialRuns:
    def __init__(self, tracking_uri: str, parent_run_id: str, space: Any, search_name: str, sample_images: int):
        self.parent_run_id = parent_run_id
        self.space = space
        self.search_name = search_name
        self.sample_images = sample_images
        self.tracking_uri = tracking_uri
        self.client = client(tracking_uri)
        parent = self.client.get_run(parent_run_id)
        self.experiment_id = parent.info.experiment_id
        self.context = inherited_tags(parent.data.tags)  # the parent's user, source, git commit
        self.runs: dict[str, str] = {}        # trial id -> child run id
        self.last_iter: dict[str, int] = {}   # trial id -> last training_iteration logged or queued
        self.pending: dict[str, list[Any]] = {}  # trial id -> metrics to log
        self.painters = Painters(workers())      # the finished trials' figures (painters.py)
        self.gone = False                        # the tracking server stopped answering for good
        for run in children(tracking_uri, parent_run_id):
            trial_id = run.data.tags.get(TRIAL_TAG)
            if not trial_id or trial_id in self.runs:
                continue
            self.runs[trial_id] = run.info.run_id
            if run.info.status != "FINISHED":  # its trial can report again: what does MLflow hold?
                history = self.client.get_metric_history(run.info.run_id, ITERATION_KEY)
                self.last_iter[trial_id] = int(max((m.value for m in history), default=0))

    def safely(self, what: str, fn, *args: Any) -> Any:
        """A tracking-server hiccup is logged, never allowed to stop the search. A server that does not
        answer through all of MLflow's retries (a minute: MLFLOW_HTTP_REQUEST_MAX_RETRIES, set by the
        search) is gone: said once, and nothing more is sent to it, so the search does not wait a
        minute per request for it (a search's end would otherwise wait hours)."""
        if self.gone:
            return None
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - tracking is best effort for the search itself
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            why = unanswered(e)
            if why:
                self.gone = True
                logger.warning("MLflow: the tracking server at %s does not answer (%s); the search goes on without "
                               "it: its trials are in trials.json, and the MLflow runs stop here",
                               self.tracking_uri, why)
            else:
                logger.warning("MLflow: could not %s: %s", what, first)
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
        status = MLFLOW_STATUS[Outcome(outcome)]
        if checkpoint is None:
            self.client.set_terminated(run_id, status)
            return
        kl = None if Outcome(outcome) is Outcome.DIVERGED else kl_per_layer(last)  # diverged: the last good checkpoint's own

        def figures_ready(files: list[tuple[str, str]] | None, error: BaseException | None) -> None:
            """The figures logged, then the run's end (a finished run has its figures)."""
            if error is not None:
                logger.warning("MLflow: could not log the figures of trial %s: %s", trial_id,
                               str(error).splitlines()[0] if str(error) else type(error).__name__)
            for path, folder in files or []:
                self.safely(f"log the figures of trial {trial_id}", self.client.log_artifact, run_id, path, folder)
            self.safely(f"finish the run of trial {trial_id}", self.client.set_terminated, run_id, status)
        self.painters.submit(figures_ready, checkpoint, self.sample_images, title, kl)

    def collect(self, wait: bool = False) -> None:
        """Log the figures the painters have drawn (all of them, waiting, when `wait`: the writer's end)."""
        self.painters.collect(wait)
        if wait:
            self.painters.drain()

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

