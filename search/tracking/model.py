"""The export's MLflow model: the best checkpoint as an MLflow model on the search's parent run,
registered under the space's `mlflow.registered_model` name with the alias `champion`.

The model is a pyfunc defined from code (pyfunc_model.py) over the checkpoint folder (weights in
safetensors, config.json, meta.json; no optimizer state), with a signature: loading it runs that
file and reads the weights, and never unpickles anything. `models:/NAME@champion` names the latest
exported best; matnet's commands open it through search/tracking/resolver.py.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from matnet.checkpoint import TRAIN_STATE

from .runs import client

CHECKPOINT = "checkpoint"  # the key of the checkpoint folder in the model's artifacts (pyfunc_model.py reads it)
CHAMPION = "champion"
EVALUATION_TAG = "evaluation"   # a model version's IWAE evaluation: data, split, images, K (evaluation_key)
NLL_TAG = "nll_nats"
MODEL_NAME = "model"
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
# Files of a checkpoint folder the model leaves out: the optimizer state, only for resuming training.
NOT_IN_MODEL = (TRAIN_STATE,)


def signature(image_shape: tuple[int, ...]) -> Any:
    """Images in ([N, C, H, W] float32, as the model reads them); two bounds per image out; the IWAE
    sample count as a parameter."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *image_shape))]),
                          outputs=Schema([ColSpec("double", "elbo_nats"), ColSpec("double", "nll_nats")]),
                          params=ParamSchema([ParamSpec("iwae_k", "long", 1)]))


def evaluation_key(evaluation: dict[str, Any]) -> str:
    """What makes two IWAE figures comparable: the same data, split, images and samples per image."""
    return json.dumps({k: evaluation.get(k) for k in ("dataset", "split", "iwae_k", "n_images", "subset")},
                      sort_keys=True)


def champion_verdict(evaluation: dict[str, Any], current: Any) -> tuple[bool, str]:
    """Whether the new version should become the champion over `current` (a model version or None),
    and why: only when it is better on the same evaluation."""
    if current is None:
        return True, "the first version"
    tags = current.tags or {}
    if tags.get(EVALUATION_TAG) != evaluation_key(evaluation):
        return False, (f"version {current.version} stays: it was evaluated on other data, split, images or K "
                       f"({tags.get(EVALUATION_TAG, 'unknown')}); compare them on one evaluation first")
    old = float(tags.get(NLL_TAG, "inf"))
    if evaluation["nll_nats"] < old:
        return True, f"better than version {current.version} ({evaluation['nll_nats']:.3f} < {old:.3f} nats)"
    return False, f"version {current.version} stays: it is better ({old:.3f} <= {evaluation['nll_nats']:.3f} nats)"


def log_model(uri: str, parent_run_id: str, checkpoint: Path, registered_name: str | None,
              evaluation: dict[str, Any]) -> dict[str, Any]:
    """Log the checkpoint as the parent run's model; register it when `registered_name` is set, with
    its evaluation as tags, and point `champion` at it when it is better than the champion on the same
    evaluation (data, split, images, K). Returns the URIs to reach it (summary.json keeps them) and
    what happened to the alias."""
    import mlflow
    import torch
    from mlflow.models import Model

    mlflow_client = client(uri)
    experiment_id = mlflow_client.get_run(parent_run_id).info.experiment_id
    image_shape = tuple(json.loads((checkpoint / "meta.json").read_text())["image_shape"])
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # Model.log and the registry read the process's tracking URI
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            folder = Path(tmp) / CHECKPOINT
            shutil.copytree(checkpoint, folder, ignore=shutil.ignore_patterns(*NOT_IN_MODEL))
            # Made here so that the model belongs to the search's experiment (Model.log alone would
            # file it under the process's active experiment).
            # The signature says what goes in and out; MLflow asks for an input example or type hints too.
            warnings.filterwarnings("ignore", message=".*(input example was not provided|Add type hints).*")
            logged = mlflow_client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=parent_run_id)
            said = io.StringIO()  # MLflow prints "Successfully registered model", "Created version": said below
            with contextlib.redirect_stderr(said):
                info = Model.log(artifact_path=None, name=MODEL_NAME, model_id=logged.model_id, run_id=parent_run_id,
                                 flavor=mlflow.pyfunc, python_model=str(CODE_FILE), artifacts={CHECKPOINT: str(folder)},
                                 signature=signature(image_shape),
                                 # Given, so that MLflow does not load the model in a subprocess to infer them.
                                 pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "safetensors", "numpy",
                                                   "pandas", f"mlflow=={mlflow.__version__}"],
                                 registered_model_name=registered_name or None, await_registration_for=0)
        for line in said.getvalue().splitlines():  # anything else MLflow said is passed on
            if line.strip() and not line.startswith(("Successfully registered model", "Created version",
                                                     "Registered model")):
                print(line, file=sys.stderr)
        out = {"model_uri": info.model_uri, "run_model_uri": f"runs:/{parent_run_id}/{MODEL_NAME}"}
        if registered_name:
            version = str(info.registered_model_version)
            mlflow_client.set_model_version_tag(registered_name, version, EVALUATION_TAG, evaluation_key(evaluation))
            mlflow_client.set_model_version_tag(registered_name, version, NLL_TAG, f"{evaluation['nll_nats']:.6f}")
            try:
                current = mlflow_client.get_model_version_by_alias(registered_name, CHAMPION)
            except mlflow.exceptions.MlflowException:
                current = None
            promote, why = champion_verdict(evaluation, current)
            if promote:
                mlflow_client.set_registered_model_alias(registered_name, CHAMPION, version)
            champion = version if promote else str(current.version)
            out.update(registered_model=registered_name, version=version, champion_version=champion,
                       champion=("moved to" if promote else "kept at") + f" version {champion}: {why}",
                       champion_uri=f"models:/{registered_name}@{CHAMPION}")
        return out
    finally:
        mlflow.set_tracking_uri(previous_uri)
