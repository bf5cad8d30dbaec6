"""The Ray Tune callback that logs every trial as a child run of the search's parent MLflow run.

All logging happens on the driver: trials (possibly on other nodes) never talk to the tracking
server, and interruption and resume are handled in one place.

- A trial's child run is found again by its `trial_id` tag under the parent (the existing children
  are listed once, when the callback first talks to MLflow), so a resumed or restarted trial never
  gets a second child run, and iterations already logged are not logged twice.
- Results are logged at matnet's training step, batched: whatever arrived in the last second goes
  as one `log_batch` request per trial (what one request per result costs grows with the results per
  second: mlflow#5269), and everything is flushed before a trial's run ends and when the search ends.
- A finished trial gets its outcome (search/store/outcome.py) as the `status` tag, its best value (from
  the trial ledger), its figures (samples or imputations, per-layer KL) under figures/, and its
  training history (metrics.jsonl, Figure 4 as kl_per_layer.png) under training/.
- Child runs carry the parent's context tags (user, source, git commit) and their data set as input.
- Under population-based training, each exploitation is a tag `pbt.exploit.N` (whose checkpoint, at
  which step, the new parameters) and `pbt.exploits` counts them.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from matnet.folders import RUN_METRICS, RUN_PLOT

from ..store.keys import ERROR_KEY, ITERATION_KEY, LINEAGE_KEY, NODE_KEY, STEP_KEY, kl_per_layer
from ..store.ledger import error_line
from ..store.outcome import Outcome, classify
from .context import dataset_input, inherited_tags
from .runs import (MAX_BATCH_METRICS, SEARCH_TAG, STATUS_TAG, TRIAL_TAG, children, chunks, client, flat_config,
                   log_params, numeric_metrics)

logger = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0  # results wait at most this long before they are logged
# A child run's MLflow status for each outcome.
MLFLOW_STATUS = {Outcome.COMPLETED: "FINISHED", Outcome.PRUNED: "FINISHED", Outcome.DIVERGED: "FAILED",
                 Outcome.ERROR: "FAILED"}


class MlflowCallback(Callback):
    def __init__(self, tracking_uri: str, parent_run_id: str, space: Any, search_name: str, ledger: Any):
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.space = space
        self.search_name = search_name
        self.ledger = ledger  # the trial ledger, a callback before this one: the trials' best values
        self.metric = space.settings.experiment.metric
        self.sample_images = space.settings.mlflow.sample_images
        self._runs: dict[str, str] = {}        # trial id -> child run id
        self._last_iter: dict[str, int] = {}   # trial id -> last training_iteration logged
        self._pending: dict[str, list[tuple[int, list[Any]]]] = {}  # trial id -> (iteration, metrics) to log
        self._flushed_at = 0.0
        self._worker: Any = None  # the thread that finishes trials' runs
        self._client = None
        self._experiment_id: str | None = None
        self._context: dict[str, str] = {}    # the parent's context tags (user, source, git commit)

    # Tune pickles callbacks with the experiment (tuner.pkl): not the client's connection.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"], state["_pending"], state["_worker"] = None, {}, None
        return state

    def get_state(self) -> dict[str, Any]:
        return {"runs": dict(self._runs), "last_iter": dict(self._last_iter)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._runs = dict(state.get("runs", {}))
        self._last_iter = dict(state.get("last_iter", {}))

    def _mlflow(self):
        """The tracking client (made on first use, with the parent run's experiment id and the child runs
        it already has: those of a resumed search)."""
        if self._client is None:
            self._client = client(self.tracking_uri)
            parent = self._client.get_run(self.parent_run_id)
            self._experiment_id = parent.info.experiment_id
            self._context = inherited_tags(parent.data.tags)
            for run in children(self.tracking_uri, self.parent_run_id):
                trial_id = run.data.tags.get(TRIAL_TAG)
                if not trial_id:
                    continue
                self._runs.setdefault(trial_id, run.info.run_id)
                # The state Tune saved with the experiment can be older than the last flush (an interruption
                # between the two): a trial that can run again (its run not ended) is asked what MLflow holds.
                if trial_id not in self._last_iter or run.info.status != "FINISHED":
                    history = self._client.get_metric_history(run.info.run_id, ITERATION_KEY)
                    self._last_iter[trial_id] = max(self._last_iter.get(trial_id, 0),
                                                    int(max((m.value for m in history), default=0)))
        return self._client

    def _safe(self, what: str, fn, *args: Any) -> Any:
        """A tracking-server hiccup is logged, never allowed to stop the search."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - tracking is best effort for the search itself
            logger.warning("MLflow: could not %s: %s", what, str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None

    # ---- child runs ------------------------------------------------------------------------------
    def _child(self, trial: Any) -> str:
        trial_id = trial.trial_id
        mlflow_client = self._mlflow()
        if trial_id in self._runs:
            return self._runs[trial_id]
        run = mlflow_client.create_run(self._experiment_id, run_name=f"{self.search_name}/{trial_id}", tags={
            **self._context, "mlflow.parentRunId": self.parent_run_id, TRIAL_TAG: trial_id,
            SEARCH_TAG: self.search_name, STATUS_TAG: str(Outcome.RUNNING)})
        self._runs[trial_id] = run.info.run_id
        drawn = dict(trial.config)
        try:
            config = self.space.trial_config(drawn)
            params = {**flat_config(config.to_dict()), **drawn}
            mlflow_client.log_inputs(run.info.run_id, datasets=[dataset_input(config.data)])
        except Exception as e:  # noqa: BLE001 - the drawn values alone are still worth logging
            params = drawn
            logger.warning("trial %s: config not rebuilt for MLflow (%s)", trial_id, e)
        log_params(mlflow_client, run.info.run_id, params, {"searched_params": ",".join(sorted(drawn))[:5000]})
        return run.info.run_id

    # ---- Tune hooks ------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        def start():
            run_id = self._child(trial)
            if self._mlflow().get_run(run_id).info.status != "RUNNING":
                self._mlflow().update_run(run_id, status="RUNNING")
                self._mlflow().set_tag(run_id, STATUS_TAG, str(Outcome.RUNNING))
        self._safe(f"start the run of trial {trial.trial_id}", start)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safe(f"record the restart of trial {trial.trial_id}",
                   lambda: self._mlflow().set_tag(self._child(trial), "restarts", str(trial.num_failures)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        def keep():
            from mlflow.entities import Metric
            run_id = self._child(trial)
            it = int(result.get(ITERATION_KEY, 0))
            exploited = result.get(LINEAGE_KEY)
            if isinstance(exploited, dict):
                self._tag_exploit(run_id, exploited)
            queued = self._pending.get(trial.trial_id, [])
            if it <= max([self._last_iter.get(trial.trial_id, 0)] + [i for i, _ in queued]):
                return  # logged before an interruption: not twice
            step = int(result.get(STEP_KEY, it))
            ts = int(time.time() * 1000)
            self._pending.setdefault(trial.trial_id, []).append(
                (it, [Metric(k, v, ts, step) for k, v in numeric_metrics(result).items()]))
        self._safe(f"log a result of trial {trial.trial_id}", keep)
        self._flush(due_only=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._flush(due_only=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._flush()
        if self._worker is not None:  # every trial's figures and end, before the search closes its runs
            self._worker.shutdown(wait=True)
            self._worker = None

    def _flush(self, trial_id: str | None = None, due_only: bool = False) -> None:
        """Log what waits (one trial's, or all), as one request per trial; `due_only`: only if the last
        flush is a second old."""
        if due_only and time.monotonic() - self._flushed_at < FLUSH_EVERY_S:
            return
        for tid in [trial_id] if trial_id is not None else list(self._pending):
            queued = self._pending.pop(tid, [])
            if not queued:
                continue

            def log(tid: str = tid, queued: list = queued) -> None:
                metrics = [m for _, batch in queued for m in batch]
                for chunk in chunks(metrics, MAX_BATCH_METRICS):
                    self._mlflow().log_batch(self._runs[tid], metrics=chunk)
                self._last_iter[tid] = max(i for i, _ in queued)
            self._safe(f"log the results of trial {tid}", log)
        if trial_id is None:
            self._flushed_at = time.monotonic()

    def _tag_exploit(self, run_id: str, exploited: dict[str, Any]) -> None:
        from mlflow.entities import RunTag
        tags = self._mlflow().get_run(run_id).data.tags
        n = int(tags.get("pbt.exploits", "0"))
        text = (f"step {exploited.get('step')}: took {exploited.get('from_trial')}'s checkpoint; "
                + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in sorted((exploited.get("params") or {}).items())))
        if any(v == text for k, v in tags.items() if k.startswith("pbt.exploit.")):
            return  # told before an interruption
        self._mlflow().log_batch(run_id, tags=[RunTag(f"pbt.exploit.{n + 1}", text[:5000]),
                                               RunTag("pbt.exploits", str(n + 1))])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, classify(trial.last_result, self.metric))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, classify(trial.last_result, self.metric, errored=True))

    def _finish(self, trial: Any, outcome: Outcome) -> None:
        """The trial's last metrics and tags, its figures and its end, on a thread of the callback's own
        (a figure means loading the checkpoint and drawing samples: Tune's loop does not wait for it);
        everything is done by the end of the search (on_experiment_end waits)."""
        from mlflow.entities import Metric, RunTag
        self._flush(trial.trial_id)
        run_id = self._safe(f"find the run of trial {trial.trial_id}", self._child, trial)
        if run_id is None:
            return
        last = dict(trial.last_result or {})
        tags = {STATUS_TAG: str(outcome)}
        if last.get(NODE_KEY):
            tags[NODE_KEY] = str(last[NODE_KEY])
        if "compiled" in last:  # whether the trial's step ran compiled (train.compile), as it reported
            tags["compiled"] = str(bool(last["compiled"])).lower()
        if outcome is Outcome.DIVERGED and last.get(ERROR_KEY):
            tags[ERROR_KEY] = str(last[ERROR_KEY])[:5000]
        if outcome is Outcome.ERROR:
            tags[ERROR_KEY] = error_line(trial.error_file)
        ts = int(time.time() * 1000)
        step = int(last.get(STEP_KEY, last.get(ITERATION_KEY, 0)) or 0)
        finals = [Metric("iterations", float(last.get(ITERATION_KEY, 0) or 0), ts, step)]
        record = self.ledger.records.get(trial.trial_id)
        if record is not None and record.best_value is not None:
            finals.append(Metric(f"best_{self.metric}", record.best_value, ts, step))
        checkpoint = trial.checkpoint if outcome is not Outcome.ERROR else None

        def finish() -> None:
            mlflow_client = client(self.tracking_uri)  # this thread's own
            mlflow_client.log_batch(run_id, metrics=finals, tags=[RunTag(k, v) for k, v in tags.items()])
            if checkpoint is not None:
                self._log_figures(mlflow_client, trial.trial_id, checkpoint, last, run_id, outcome)
            mlflow_client.set_terminated(run_id, MLFLOW_STATUS[outcome])
        self._background().submit(self._safe, f"finish the run of trial {trial.trial_id}", finish)

    def _background(self) -> Any:
        if self._worker is None:
            from concurrent.futures import ThreadPoolExecutor
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-trials")
        return self._worker

    def _log_figures(self, mlflow_client: Any, trial_id: str, checkpoint: Any, last: dict[str, Any], run_id: str,
                     outcome: Outcome) -> None:
        from matnet.figures import checkpoint_figures, history_figure

        kl = kl_per_layer(last)
        if outcome is Outcome.DIVERGED:
            kl = None  # the checkpoint is the last good one; its own metrics say what its KLs were
        with tempfile.TemporaryDirectory() as tmp, checkpoint.as_directory() as folder:
            title = f"{trial_id} ({outcome}), step {last.get(STEP_KEY, '?')}"
            for f in checkpoint_figures(folder, Path(tmp), self.sample_images, title, kl):
                mlflow_client.log_artifact(run_id, str(f), "figures")
            # The trial's training history, kept in its checkpoints (search/tune/trainable.py), and Figure 4
            # drawn from it here (the trial does not redraw it at every report).
            if (Path(folder) / RUN_METRICS).is_file():
                mlflow_client.log_artifact(run_id, str(Path(folder) / RUN_METRICS), "training")
                (Path(tmp) / "training").mkdir()
                figure = history_figure(folder, Path(tmp) / "training" / RUN_PLOT)
                if figure is not None:
                    mlflow_client.log_artifact(run_id, str(figure), "training")
