"""MLflow: one parent run per search, one nested child run per trial, safe across --resume.

All logging happens on the driver, in a Ray Tune callback: trials (possibly on other nodes) never
talk to the tracking server, and interruption and resume are handled in one place.

- The parent run is created by `search.run` before Ray starts; its id is kept in
  STORAGE/NAME/search.json, so a resumed search logs to the same parent.
- A trial's child run is found again by its `trial_id` tag under that parent (and by the
  callback's own state), so a resumed or restarted trial never gets a second child run. Metrics of
  iterations already logged are not logged twice.
- Each result is logged with one `log_batch` request (all its metrics at once), at matnet's
  training step.
- A finished trial gets its final metrics, its status (completed / pruned / diverged / error) and,
  as artifacts, a grid of samples and its per-layer KL (JSON and a bar chart).
- Whatever stops the search, `close_search` leaves no run RUNNING: unfinished children become
  KILLED, the parent FINISHED, KILLED or FAILED.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

from ray.tune import Callback

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TRIAL_TAG = "trial_id"
SEARCH_TAG = "search_name"
STATUS_TAG = "status"
# Result keys that Ray adds and that say nothing about the model.
RAY_KEYS = {"pid", "timestamp", "time_this_iter_s", "iterations_since_restore", "time_since_restore",
            "should_checkpoint", "done", "date", "hostname", "node_ip", "trial_id", "experiment_tag",
            "config", "checkpoint_dir_name", "experiment_id"}
MAX_BATCH_PARAMS = 100


def resolve_tracking_uri(cli_uri: str | None = None, yaml_uri: str | None = None) -> str:
    """--tracking-uri, else the space file's mlflow.tracking_uri, else MLFLOW_TRACKING_URI, else
    sqlite:///mlflow.db in the working directory."""
    return cli_uri or yaml_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _client(uri: str):
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=uri)


def _chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def flat_config(d: Any, prefix: str = "") -> dict[str, str]:
    """A config dict as MLflow params: dotted keys, lists of settings as compact JSON."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_config(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v, separators=(",", ":"))
        else:
            out[key] = str(v)
    return out


def log_params(client: Any, run_id: str, params: dict[str, Any], tags: dict[str, str] | None = None) -> None:
    from mlflow.entities import Param, RunTag
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    tag_items = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    first = True
    for chunk in _chunks(items, MAX_BATCH_PARAMS) if items else [[]]:
        client.log_batch(run_id, params=chunk, tags=tag_items if first else [])
        first = False


def numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in result.items():
        if k in RAY_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out[k] = float(v)
    return out


def start_parent(uri: str, experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str],
                 artifacts: list[str] | None = None) -> str:
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name=run_name, tags={SEARCH_TAG: run_name, **tags})
    log_params(client, run.info.run_id, params)
    for a in artifacts or []:
        client.log_artifact(run.info.run_id, a)
    return run.info.run_id


def reopen_parent(uri: str, run_id: str) -> None:
    client = _client(uri)
    client.get_run(run_id)  # raises if it is gone
    client.update_run(run_id, status="RUNNING")
    client.set_tag(run_id, STATUS_TAG, "running")


def children(uri: str, parent_run_id: str) -> list[Any]:
    client = _client(uri)
    parent = client.get_run(parent_run_id)
    return client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              max_results=5000)


def close_search(uri: str, parent_run_id: str, status: str, note: str = "") -> None:
    """Leave no run RUNNING: unfinished children -> KILLED, the parent -> `status`."""
    client = _client(uri)
    for run in children(uri, parent_run_id):
        if run.info.status in ("RUNNING", "SCHEDULED"):
            client.set_tag(run.info.run_id, STATUS_TAG, "interrupted")
            client.set_terminated(run.info.run_id, "KILLED")
    client.set_tag(parent_run_id, STATUS_TAG, note or status.lower())
    client.set_terminated(parent_run_id, status)


def trial_error_line(trial: Any) -> str:
    """The last line of a failed trial's error file (the exception), or a generic note."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:5000] if lines else "trial failed (see its error.txt)"


def plot_kl(kl: list[float], names: list[str], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(kl) + 1.5), 3.2))
    ax.bar(range(len(kl)), kl, color="#4477aa")
    ax.set_xticks(range(len(kl)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("KL (nats / image)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_trial_figures(checkpoint_dir: str | Path, out: Path, n_samples: int, title: str,
                         kl_per_layer: list[float] | None = None) -> list[Path]:
    """samples.png (means of p(x|z)) for a generative checkpoint, or imputations.png (original, masked
    input, imputations; validation images under the model's own masks) for a conditional one, and
    kl_per_layer.json and kl_per_layer.png."""
    import torch

    from matnet.build import is_conditional
    from matnet.checkpoint import load_checkpoint
    from matnet.impute import imputation_figure
    from matnet.plots import save_grid

    model, cfg, meta = load_checkpoint(checkpoint_dir, "cpu")
    files = []
    if n_samples > 0 and is_conditional(model):
        # A conditional MatNet draws x_u given x_k: nothing to sample without images to condition on.
        rows = max(1, min(8, n_samples // 6))
        files.append(imputation_figure(model, cfg, out / "imputations.png", n_images=rows, samples=6))
    elif n_samples > 0:
        g = torch.random.fork_rng()
        with g:
            torch.manual_seed(0)
            with torch.no_grad():
                images = model.sample(n_samples, mean=True)
        files.append(save_grid(images, out / "samples.png"))
    kl = kl_per_layer if kl_per_layer is not None else meta.get("metrics", {}).get("val_kl_per_layer")
    if kl:
        # "z<i> (scale)" for every latent layer, numbered here (coarse to fine, z0 the fc top).
        names = [f"z{i} ({n.split('(', 1)[1]}" if "(" in n else f"z{i}" for i, n in enumerate(model.layer_names())]
        (out / "kl_per_layer.json").write_text(json.dumps(
            {"kl_per_layer": kl, "layers": names, "step": meta.get("step"), "bound": "elbo"}, indent=2) + "\n")
        files.append(out / "kl_per_layer.json")
        files.append(plot_kl(kl, names, out / "kl_per_layer.png", title))
    return files


class MlflowCallback(Callback):
    """Ray Tune callback: logs every trial as a child run of the search's parent run."""

    def __init__(self, tracking_uri: str, parent_run_id: str, space: Any, max_t: int, search_name: str):
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.space = space
        self.max_t = max_t
        self.search_name = search_name
        self.metric = space.spec.experiment.metric
        self.mode = space.spec.experiment.mode
        self.sample_images = space.spec.mlflow.sample_images
        self._runs: dict[str, str] = {}        # trial id -> child run id
        self._last_iter: dict[str, int] = {}   # trial id -> last training_iteration logged
        self._stopped: dict[str, bool] = {}    # trial id -> the scheduler stopped it at its last result
        self._best: dict[str, float] = {}      # trial id -> best metric value seen
        self._client_obj = None
        self._exp_id: str | None = None

    # Tune pickles callbacks with the experiment (tuner.pkl) and checkpoints their state.
    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["_client_obj"] = None
        return d

    def get_state(self) -> dict[str, Any]:
        return {"runs": dict(self._runs), "last_iter": dict(self._last_iter), "best": dict(self._best)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._runs = dict(state.get("runs", {}))
        self._last_iter = dict(state.get("last_iter", {}))
        self._best = dict(state.get("best", {}))

    @property
    def client(self):
        if self._client_obj is None:
            self._client_obj = _client(self.tracking_uri)
            self._exp_id = self._client_obj.get_run(self.parent_run_id).info.experiment_id
        return self._client_obj

    def _safe(self, what: str, fn, *args, **kwargs):
        """A tracking-server hiccup is logged, never allowed to stop the search."""
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - tracking is best effort for the search itself
            logger.warning("MLflow: could not %s: %s", what, str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None

    # ---- child runs ----------------------------------------------------------------------------
    def _find_child(self, trial_id: str) -> Any:
        runs = self.client.search_runs(
            [self._exp_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}' and tags.{TRIAL_TAG} = '{trial_id}'",
            max_results=10)
        return runs[0] if runs else None

    def _child(self, trial: Any) -> str:
        tid = trial.trial_id
        if tid in self._runs:
            return self._runs[tid]
        _ = self.client
        found = self._find_child(tid)
        if found is not None:
            self._runs[tid] = found.info.run_id
            if tid not in self._last_iter:
                hist = self.client.get_metric_history(found.info.run_id, "training_iteration")
                self._last_iter[tid] = int(max((m.value for m in hist), default=0))
            return found.info.run_id
        run = self.client.create_run(self._exp_id, run_name=f"{self.search_name}/{tid}", tags={
            "mlflow.parentRunId": self.parent_run_id, TRIAL_TAG: tid, SEARCH_TAG: self.search_name,
            STATUS_TAG: "running"})
        run_id = run.info.run_id
        self._runs[tid] = run_id
        params = dict(trial.config)
        searched = sorted(params)
        try:
            cfg = self.space.trial_config(params)
            all_params = {**flat_config(cfg.to_dict()), **{k: v for k, v in params.items()}}
        except Exception as e:  # noqa: BLE001
            all_params = dict(params)
            logger.warning("trial %s: config not rebuilt for MLflow (%s)", tid, e)
        log_params(self.client, run_id, all_params, {"searched_params": ",".join(searched)[:5000]})
        return run_id

    # ---- Tune hooks ----------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        def start():
            run_id = self._child(trial)
            if self.client.get_run(run_id).info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
                self.client.set_tag(run_id, STATUS_TAG, "running")
        self._safe(f"start the run of trial {trial.trial_id}", start)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        def recover():
            run_id = self._child(trial)
            self.client.set_tag(run_id, "restarts", str(trial.run_metadata.num_failures))
        self._safe(f"record the restart of trial {trial.trial_id}", recover)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        tid = trial.trial_id
        it = int(result.get("training_iteration", 0))
        # `done` on a result the trial did not mark itself means the scheduler stopped it there.
        self._stopped[tid] = bool(result.get("done")) and it < self.max_t
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            prev = self._best.get(tid)
            better = prev is None or (value < prev if self.mode == "min" else value > prev)
            if better:
                self._best[tid] = float(value)

        def log():
            from mlflow.entities import Metric
            run_id = self._child(trial)
            if it <= self._last_iter.get(tid, 0):
                return  # logged before an interruption: not twice
            step = int(result.get("step", it))
            ts = int(time.time() * 1000)
            metrics = [Metric(k, v, ts, step) for k, v in numeric_metrics(result).items()]
            if metrics:
                for chunk in _chunks(metrics, 1000):
                    self.client.log_batch(run_id, metrics=chunk)
            self._last_iter[tid] = it
        self._safe(f"log a result of trial {tid}", log)

    def _final_status(self, trial: Any) -> str:
        last = trial.last_result or {}
        if last.get("status") == "diverged":
            return "diverged"
        if self._stopped.get(trial.trial_id):
            return "pruned"
        return "completed"

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        status = self._final_status(trial)
        self._finish(trial, status, "FAILED" if status == "diverged" else "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "error", "FAILED")

    def _finish(self, trial: Any, status: str, mlflow_status: str) -> None:
        tid = trial.trial_id

        def finish():
            from mlflow.entities import Metric
            run_id = self._child(trial)
            last = trial.last_result or {}
            tags = {STATUS_TAG: status}
            if last.get("ray_node_id"):
                tags["ray_node_id"] = str(last["ray_node_id"])
            if status == "diverged" and last.get("error"):
                tags["error"] = str(last["error"])[:5000]
            if status == "error":
                tags["error"] = trial_error_line(trial)
            ts = int(time.time() * 1000)
            step = int(last.get("step", last.get("training_iteration", 0)) or 0)
            finals = []
            if tid in self._best:
                finals.append(Metric(f"best_{self.metric}", self._best[tid], ts, step))
            finals.append(Metric("iterations", float(last.get("training_iteration", 0) or 0), ts, step))
            from mlflow.entities import RunTag
            self.client.log_batch(run_id, metrics=finals, tags=[RunTag(k, v) for k, v in tags.items()])
            if status != "error":
                self._log_figures(trial, run_id, status)
            self.client.set_terminated(run_id, mlflow_status)
        self._safe(f"finish the run of trial {tid}", finish)

    def _log_figures(self, trial: Any, run_id: str, status: str) -> None:
        ckpt = trial.checkpoint
        if ckpt is None:
            return
        last = trial.last_result or {}
        kl = [last[f"val_kl_{i}"] for i in range(1000) if f"val_kl_{i}" in last] or None
        if status == "diverged":
            kl = None  # the checkpoint is the last good one; its own metrics say what its KLs were
        with tempfile.TemporaryDirectory() as tmp, ckpt.as_directory() as d:
            title = f"{trial.trial_id} ({status}), step {last.get('step', '?')}"
            for f in render_trial_figures(d, Path(tmp), self.sample_images, title, kl):
                self.client.log_artifact(run_id, str(f), "figures")
