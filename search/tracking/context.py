"""What MLflow records about where a search's runs come from, as its UI and API expect it:

- the standard context tags (`mlflow.user`, `mlflow.source.name` / `.type`, `mlflow.source.git.*`),
  which `mlflow.start_run` adds by itself but runs made with the client API (as the driver makes
  them, for many trials at once) do not;
- the data set the runs trained on, as an MLflow dataset input (`log_inputs`);
- the experiment's kind (`mlflow.experimentKind`), which tells the UI that the experiment trains models.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
from pathlib import Path
from typing import Any

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"   # MLflow 3's kind for model training (vs. genai_development)
# The tags a child run copies from its parent: the same command, user and code made both.
CONTEXT_PREFIXES = ("mlflow.user", "mlflow.source.")
COMMIT_ENV = "MATNET_GIT_COMMIT"  # the commit an installed copy without .git was built from (docker/Dockerfile)


def context_tags(entry_point: str) -> dict[str, str]:
    """Who ran `entry_point` (e.g. search.run), and the git commit of the code it ran, when that code
    is a git checkout."""
    from mlflow.entities import SourceType
    from mlflow.utils import git_utils
    from mlflow.utils.mlflow_tags import (MLFLOW_GIT_BRANCH, MLFLOW_GIT_COMMIT, MLFLOW_GIT_REPO_URL, MLFLOW_SOURCE_NAME,
                                          MLFLOW_SOURCE_TYPE, MLFLOW_USER)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        user = "unknown"
    tags = {MLFLOW_USER: user, MLFLOW_SOURCE_NAME: entry_point,
            MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL)}
    code = str(Path(__file__).resolve().parents[1])  # the search package
    for tag, read in ((MLFLOW_GIT_COMMIT, git_utils.get_git_commit), (MLFLOW_GIT_BRANCH, git_utils.get_git_branch),
                      (MLFLOW_GIT_REPO_URL, git_utils.get_git_repo_url)):
        value = read(code)
        if value:
            tags[tag] = value
    # An installed copy without .git (the Docker image) says which commit it was built from.
    if MLFLOW_GIT_COMMIT not in tags and os.environ.get(COMMIT_ENV):
        tags[MLFLOW_GIT_COMMIT] = os.environ[COMMIT_ENV]
    return tags


def inherited_tags(parent_tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in parent_tags.items() if k.startswith(CONTEXT_PREFIXES)}


def dataset_input(data: Any, context: str = "training") -> Any:
    """The data set of a matnet DataConfig as an MLflow dataset input. It is described by its
    configuration (the driver does not read the images): name, where it is read from, the slice of
    it used, and a digest of those, so runs on the same data share one dataset in the UI."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    from matnet.data import source_folder
    source = {"dataset": data.dataset, "uri": str(Path(source_folder(data)).expanduser().resolve())}
    profile = {"binarize": data.binarize, "train_limit": data.train_limit, "val_size": data.val_size,
               "eval_limit": data.eval_limit, "task": data.task}
    if data.task == "impute":
        profile["mask"] = data.mask
    digest = hashlib.sha256(json.dumps([source, profile], sort_keys=True).encode()).hexdigest()[:8]
    name = data.dataset + ("" if data.binarize == "none" else f" ({data.binarize} binarization)")
    dataset = Dataset(name=name, digest=digest, source_type="local", source=json.dumps(source),
                      profile=json.dumps(profile))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])
