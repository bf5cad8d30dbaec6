"""matnet's resolver for checkpoints in MLflow: `models:/NAME@ALIAS` (or /VERSION), `models:/m-ID`
and `runs:/RUN_ID/PATH`, registered in pyproject.toml as the entry points `models` and `runs` of
the group matnet.checkpoint_resolvers (matnet/locate.py), so that

    python -m matnet.evaluate models:/matnet-quickstart@champion
    python -m matnet.sample runs:/RUN_ID/model --out samples.png

download the checkpoint from the tracking server (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db) to a
temporary folder removed when the command exits. PATH may name the search's MLflow model or a
checkpoint folder logged as artifacts.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from matnet.checkpoint import CheckpointError

from .model import CHECKPOINT
from .uri import tracking_uri


def resolve(uri: str) -> Path:
    import mlflow

    uri_of_store = tracking_uri()
    local = Path(tempfile.mkdtemp(prefix="matnet-mlflow-"))
    atexit.register(shutil.rmtree, local, True)
    fetched = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(local),
                                                       tracking_uri=uri_of_store))
    return checkpoint_in(fetched, uri)


def checkpoint_in(folder: Path, uri: str) -> Path:
    """The checkpoint folder inside what was downloaded: an MLflow model's checkpoint artifact (its
    MLmodel file says where), or the folder itself."""
    if (folder / "MLmodel").is_file():
        from mlflow.models import Model
        artifacts = Model.load(str(folder)).flavors.get("python_function", {}).get("artifacts", {})
        if CHECKPOINT not in artifacts:
            raise CheckpointError(f"{uri}: an MLflow model without a matnet checkpoint (no artifact "
                                  f"{CHECKPOINT!r}); give the model a search exported")
        return folder / artifacts[CHECKPOINT]["path"]
    if (folder / "config.json").is_file():
        return folder
    raise CheckpointError(f"{uri}: neither an MLflow model of a matnet checkpoint nor a checkpoint folder "
                          f"(config.json, model.safetensors); check the path")
