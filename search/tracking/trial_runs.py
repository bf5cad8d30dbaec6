"""The MLflow child runs of a search's trials, as written by the tracking writer (writer.py): what the
Tune callback (callback.py) decides, this sink (sinks.py) turns into MLflow requests.

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

import json
import logging
from typing import Any

from ..store.keys import ITERATION_KEY
from ..store.outcome import Outcome
from .context import dataset_input, inherited_tags
from .runs import (MAX_BATCH_METRICS, SEARCH_TAG, STATUS_TAG, TRIAL_TAG, children, chunks, client,
                   log_params)
from .sinks import TrialSink

logger = logging.getLogger(__name__)

CONFIG_ARTIFACT = "config.json"  # a trial's whole matnet config, beside its searched parameters
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


class TrialRuns(TrialSink):
    label = "MLflow"

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
        for run in children(tracking_uri, parent_run_id):
            trial_id = run.data.tags.get(TRIAL_TAG)
            if not trial_id or trial_id in self.runs:
                continue
            self.runs[trial_id] = run.info.run_id
            if run.info.status != "FINISHED":  # its trial can report again: what does MLflow hold?
                history = self.client.get_metric_history(run.info.run_id, ITERATION_KEY)
                self.last_iter[trial_id] = int(max((m.value for m in history), default=0))

    def given_up(self, error: BaseException) -> bool:
        """A server that does not answer through all of MLflow's retries (a minute:
        MLFLOW_HTTP_REQUEST_MAX_RETRIES, set by the search) is gone: said once, and nothing more is sent
        to it, so the search does not wait a minute per request for it (a search's end would otherwise
        wait hours)."""
        why = unanswered(error)
        if why:
            self.gone = True
            logger.warning("MLflow: the tracking server at %s does not answer (%s); the search goes on without "
                           "it: its trials are in trials.json, and the MLflow runs stop here", self.tracking_uri, why)
        return bool(why)

    # ---- what the callback sends (writer.py calls these by name) ---------------------------------
    def start(self, trial_id: str, drawn: dict[str, Any]) -> None:
        created = trial_id not in self.runs
        run_id = self._child(trial_id, drawn)
        if not created and self.client.get_run(run_id).info.status != "RUNNING":  # a resumed trial's run
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, STATUS_TAG, str(Outcome.RUNNING))

    def recover(self, trial_id: str, drawn: dict[str, Any], failures: int) -> None:
        self.client.set_tag(self._child(trial_id, drawn), "restarts", str(failures))

    def result(self, trial_id: str, drawn: dict[str, Any], iteration: int, step: int, ts: int,
               metrics: dict[str, float]) -> None:
        """One result's metrics at matnet's training step, queued unless that iteration was logged."""
        from mlflow.entities import Metric
        self._child(trial_id, drawn)
        if iteration <= self.last_iter.get(trial_id, 0):
            return  # logged before an interruption or a restart: not twice
        self.last_iter[trial_id] = iteration
        self.pending.setdefault(trial_id, []).extend(Metric(k, v, ts, step) for k, v in metrics.items())

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

    def finish(self, trial_id: str, drawn: dict[str, Any], outcome: str, step: int, ts: int,
               finals: dict[str, float], tags: dict[str, str]) -> None:
        """The trial's last metrics and outcome tags (its figures and end come with `end`)."""
        from mlflow.entities import Metric, RunTag
        self.flush(trial_id)
        self.client.log_batch(self._child(trial_id, drawn), metrics=[Metric(k, v, ts, step) for k, v in finals.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])

    def end(self, trial_id: str, outcome: str, files: list[tuple[str, str]]) -> None:
        """The trial's figures as artifacts (each file in its folder), then the run's end."""
        run_id = self.runs[trial_id]
        for path, folder in files:
            self.safely(f"log the figures of trial {trial_id}", self.client.log_artifact, run_id, path, folder)
        self.client.set_terminated(run_id, MLFLOW_STATUS[Outcome(outcome)])

    def flush(self, trial_id: str | None = None) -> None:
        """Log what waits (one trial's, or all), as one request per trial (per 1,000 metrics)."""
        for tid in [trial_id] if trial_id is not None else list(self.pending):
            metrics = self.pending.pop(tid, [])
            for chunk in chunks(metrics, MAX_BATCH_METRICS):
                self.safely(f"log the results of trial {tid}", self.client.log_batch, self.runs[tid], chunk)

    # ---- helpers ---------------------------------------------------------------------------------
    def _child(self, trial_id: str, drawn: dict[str, Any]) -> str:
        """The trial's child run, created the first time: the parameters the search drew (each once, under
        its name in the space file, so MLflow's compare page plots and tables only what differs between
        trials), the whole config as config.json, and its data set."""
        if trial_id in self.runs:
            return self.runs[trial_id]
        run = self.client.create_run(self.experiment_id, run_name=f"{self.search_name}/{trial_id}", tags={
            **self.context, "mlflow.parentRunId": self.parent_run_id, TRIAL_TAG: trial_id,
            SEARCH_TAG: self.search_name, STATUS_TAG: str(Outcome.RUNNING)})
        self.runs[trial_id] = run.info.run_id
        try:
            config = self.space.trial_config(dict(drawn))
            self.client.log_text(run.info.run_id, json.dumps(config.to_dict(), indent=2) + "\n", CONFIG_ARTIFACT)
            self.client.log_inputs(run.info.run_id, datasets=[dataset_input(config.data)])
        except Exception as e:  # noqa: BLE001 - the drawn values alone are still worth logging
            logger.warning("trial %s: config not rebuilt for MLflow (%s)", trial_id, e)
        log_params(self.client, run.info.run_id, drawn, {"searched_params": ",".join(sorted(drawn))[:5000]})
        return run.info.run_id

