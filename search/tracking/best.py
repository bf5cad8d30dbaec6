"""The export's MLflow part: the best checkpoint, its IWAE figures and the summary on the parent run."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .runs import client


def log_best(uri: str, parent_run_id: str, summary: dict[str, Any], summary_text: str, figures: list[Path],
             checkpoint: Path) -> None:
    """Metrics `best_<split>_nll_nats` (IWAE), `_nll_stderr`, `_elbo_nats` (and `_bpd`), the best
    trial's best value; params iwae_k and iwae_images (first export; a later one with another K is
    tagged iwae_k_latest); artifacts best/figures/, summary.json and best/checkpoint/ (weights and
    config, no optimizer state)."""
    from mlflow.entities import Metric, Param, RunTag

    mlflow_client = client(uri)
    best, evaluation = summary["best"], summary["best"]["evaluation"]
    k, split, metric = evaluation["iwae_k"], evaluation["split"], summary["metric"]
    ts = int(time.time() * 1000)
    prefix = f"best_{split}"
    metrics = [Metric(f"{prefix}_nll_nats", evaluation["nll_nats"], ts, 0),
               Metric(f"{prefix}_nll_stderr", evaluation["nll_stderr"], ts, 0),
               Metric(f"{prefix}_elbo_nats", evaluation["elbo_nats"], ts, 0)]
    if "bpd" in evaluation:
        metrics.append(Metric(f"{prefix}_bpd", evaluation["bpd"], ts, 0))
    if best[f"best_{metric}"] is not None:
        metrics.append(Metric(f"best_{metric}", best[f"best_{metric}"], ts, 0))
    existing = mlflow_client.get_run(parent_run_id).data.params
    params = [Param(name, str(value)) for name, value in {"iwae_k": k, "iwae_images": evaluation["n_images"]}.items()
              if name not in existing]
    tags = [RunTag("best_trial_id", best["trial_id"]), RunTag("best_checkpoint", str(best["checkpoint"]))]
    if existing.get("iwae_k", str(k)) != str(k):
        tags.append(RunTag("iwae_k_latest", str(k)))
    mlflow_client.log_batch(parent_run_id, metrics=metrics, params=params, tags=tags)
    for f in figures:
        mlflow_client.log_artifact(parent_run_id, str(f), "best/figures")
    with tempfile.TemporaryDirectory() as tmp:
        summary_file = Path(tmp) / "summary.json"
        summary_file.write_text(summary_text)
        mlflow_client.log_artifact(parent_run_id, str(summary_file))
        weights = Path(tmp) / "checkpoint"
        shutil.copytree(checkpoint, weights, ignore=shutil.ignore_patterns("train_state.pt"))
        mlflow_client.log_artifacts(parent_run_id, str(weights), "best/checkpoint")
