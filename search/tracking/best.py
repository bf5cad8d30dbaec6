"""The export's MLflow part, on the search's parent run: the best checkpoint's IWAE figures and
metrics, the study's parameter importances and plots, the checkpoint as a registered MLflow model
(model.py), and the summary."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from .model import log_model
from .runs import client


def log_best(uri: str, parent_run_id: str, summary: dict[str, Any], figures: list[Path], study_files: list[Path],
             importances: dict[str, float], checkpoint: Path, registered_name: str | None) -> dict[str, Any]:
    """Metrics `best_<split>_nll_nats` (IWAE), `_nll_stderr`, `_elbo_nats` (and `_bpd`), the best
    trial's best value, `param_importance/<name>`; params iwae_k and iwae_images (first export; a
    later one with another K is tagged iwae_k_latest); artifacts best/figures/, study/ (importances
    and parallel coordinates), and the checkpoint as the MLflow model `model` (weights and config, no
    optimizer state), registered as `registered_name` (the URIs it has are returned)."""
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
    metrics += [Metric(f"param_importance/{name}", value, ts, 0) for name, value in importances.items()]
    existing = mlflow_client.get_run(parent_run_id).data.params
    params = [Param(name, str(value)) for name, value in {"iwae_k": k, "iwae_images": evaluation["n_images"]}.items()
              if name not in existing]
    tags = [RunTag("best_trial_id", best["trial_id"]), RunTag("best_checkpoint", str(best["checkpoint"]))]
    if existing.get("iwae_k", str(k)) != str(k):
        tags.append(RunTag("iwae_k_latest", str(k)))
    mlflow_client.log_batch(parent_run_id, metrics=metrics, params=params, tags=tags)
    for f in figures:
        mlflow_client.log_artifact(parent_run_id, str(f), "best/figures")
    for f in study_files:
        mlflow_client.log_artifact(parent_run_id, str(f), "study")
    return log_model(uri, parent_run_id, checkpoint, registered_name, evaluation)


def log_summary(uri: str, parent_run_id: str, summary_text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        summary_file = Path(tmp) / "summary.json"
        summary_file.write_text(summary_text)
        client(uri).log_artifact(parent_run_id, str(summary_file))
