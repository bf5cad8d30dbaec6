"""MLflow runs of a search: one parent run per search, one nested child run per trial.

The parent run is created by `search.run` before Ray starts; its id is kept in the search folder
(search.json), so a resumed search logs to the same parent. Whatever stops the search,
`close_search` leaves no run RUNNING: unfinished children become KILLED, the parent FINISHED,
KILLED or FAILED.
"""
from __future__ import annotations

from typing import Any, Iterable

from .metrics import STATUS_TAG

TRIAL_TAG = "trial_id"
SEARCH_TAG = "search_name"
SEARCH_RUNNING = "running"
TRIAL_INTERRUPTED = "interrupted"  # a child run whose trial was still running when the search stopped
MAX_BATCH_PARAMS = 100  # MLflow's limit of params per log_batch request
MAX_BATCH_METRICS = 1000


def client(uri: str):
    import logging

    from mlflow.tracking import MlflowClient
    # Creating a new sqlite or PostgreSQL store logs its schema migration at INFO: nothing a user needs.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def log_params(mlflow_client: Any, run_id: str, params: dict[str, Any], tags: dict[str, str] | None = None) -> None:
    from mlflow.entities import Param, RunTag
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    tag_items = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    first = True
    for chunk in chunks(items, MAX_BATCH_PARAMS) if items else [[]]:
        mlflow_client.log_batch(run_id, params=chunk, tags=tag_items if first else [])
        first = False


def start_parent(uri: str, experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str],
                 artifacts: list[str] | None = None, artifact_location: str | None = None,
                 dataset: Any = None) -> str:
    """The search's parent run, in `experiment` (made, as a model-training experiment, if new), with
    MLflow's context tags (who, from what, which commit) besides `tags`, and `dataset` (an MLflow
    DatasetInput) as its input."""
    from .context import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, context_tags
    mlflow_client = client(uri)
    exp = mlflow_client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else mlflow_client.create_experiment(
        experiment, artifact_location=artifact_location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if exp is not None and EXPERIMENT_KIND_TAG not in exp.tags:
        mlflow_client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    run = mlflow_client.create_run(exp_id, run_name=run_name,
                                   tags={**context_tags("search.run"), SEARCH_TAG: run_name, **tags})
    log_params(mlflow_client, run.info.run_id, params)
    if dataset is not None:
        mlflow_client.log_inputs(run.info.run_id, datasets=[dataset])
    for a in artifacts or []:
        mlflow_client.log_artifact(run.info.run_id, a)
    return run.info.run_id


def runs_table_url(server: str, experiment_id: str) -> str:
    """The page of MLflow's UI that lists an experiment's training runs. MLflow 3.17 opens an
    experiment on its GenAI overview (traces) unless the URL asks for the machine-learning workflow;
    the experiment's kind tag alone does not change that (checked in Chromium: tests/test_cluster.py)."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


def runs_table_hint(uri: str, parent_run_id: str) -> str:
    """Where a user sees a search's runs: the URL on a tracking server, else the `mlflow ui` command
    for the store and the URL it then serves."""
    experiment_id = client(uri).get_run(parent_run_id).info.experiment_id
    if uri.startswith(("http://", "https://")):
        return runs_table_url(uri, experiment_id)
    return (f"mlflow ui --backend-store-uri {uri}   then open "
            f"{runs_table_url('http://127.0.0.1:5000', experiment_id)}")


def reopen_parent(uri: str, run_id: str) -> None:
    mlflow_client = client(uri)
    mlflow_client.get_run(run_id)  # raises if it is gone
    mlflow_client.update_run(run_id, status="RUNNING")
    mlflow_client.set_tag(run_id, STATUS_TAG, SEARCH_RUNNING)


def children(uri: str, parent_run_id: str) -> list[Any]:
    """Every child run of the parent (page by page: a search may have more than a page of trials)."""
    mlflow_client = client(uri)
    parent = mlflow_client.get_run(parent_run_id)
    out, token = [], None
    while True:
        page = mlflow_client.search_runs([parent.info.experiment_id],
                                         filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                                         max_results=5000, page_token=token)
        out += list(page)
        token = page.token
        if not token:
            return out


def close_search(uri: str, parent_run_id: str, status: str, note: str = "") -> None:
    """Leave no run RUNNING: unfinished children -> KILLED, the parent -> `status`."""
    mlflow_client = client(uri)
    for run in children(uri, parent_run_id):
        if run.info.status in ("RUNNING", "SCHEDULED"):
            mlflow_client.set_tag(run.info.run_id, STATUS_TAG, TRIAL_INTERRUPTED)
            mlflow_client.set_terminated(run.info.run_id, "KILLED")
    mlflow_client.set_tag(parent_run_id, STATUS_TAG, note or status.lower())
    mlflow_client.set_terminated(parent_run_id, status)
