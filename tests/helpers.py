"""What the tests share: the repository's root, small configurations (real MNIST, narrow models, few
steps), small search spaces, photographs written as files, and readers of a search's MLflow runs and
Optuna study."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matnet.config import Config

from matnet.sections import MetaModule
from matnet.presets import preset

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "spaces" / "quickstart.yaml"


def micro_config(tmp_path=None, **train) -> Config:
    """A 5-latent-layer conv MatNet on the first 2000 real MNIST training images."""
    cfg = preset("tiny")
    cfg.model.meta_modules = [MetaModule(7, 16, 2, 2), MetaModule(14, 16, 2, 2)]
    cfg.model.data_width = 8
    cfg.model.top_latents = 8
    cfg.data.train_limit = 2000
    cfg.data.eval_limit = 200
    cfg.train.device = "cpu"
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def tune_checkpoint(folder: Path):
    """A trial's Tune checkpoint as a search hands it to the tracking writer: a real matnet checkpoint
    that carries its training history (search/tune/trainable.py copies metrics.jsonl into it)."""
    import shutil

    from ray import tune

    from matnet.folders import RUN_METRICS
    from matnet.train import train
    run = Path(folder) / "run"
    train(micro_config(max_steps=2, eval_every_steps=1), run, progress=False)
    shutil.copy2(run / RUN_METRICS, run / "checkpoint" / RUN_METRICS)
    return tune.Checkpoint.from_directory(str(run / "checkpoint"))


def resolver_env(tmp_path) -> dict[str, str]:
    """The environment under which a subprocess finds matnet's checkpoint resolvers as pyproject.toml
    declares them (matnet/locate.py looks them up as entry points). An install of this checkout
    (scripts/setup.sh) has them; an older install made from another checkout may not, and then a
    distribution holding just these entry points is put on PYTHONPATH."""
    import os
    import tomllib
    from importlib.metadata import entry_points
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    group = "matnet.checkpoint_resolvers"
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"][group]
    installed = {ep.name: ep.value for ep in entry_points(group=group)}
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    if any(installed.get(name) != value for name, value in declared.items()):
        dist = Path(tmp_path) / "resolvers" / "matnet_search_resolvers-0.dist-info"
        dist.mkdir(parents=True, exist_ok=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: matnet-search-resolvers\nVersion: 0\n")
        (dist / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()))
        paths.insert(1, str(dist.parent))
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


# ---- search spaces -----------------------------------------------------------------------------------
def small_space(name: str, n: int = 4, steps: int = 30, every: int = 10, **sections: Any) -> dict[str, Any]:
    """A search of `n` trials of a narrow MatNet on 500 real MNIST images, `steps` steps each, reporting
    every `every`; a section given replaces the default one (experiment: updates it)."""
    space: dict[str, Any] = {
        "experiment": {"name": name, "num_samples": n, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0},
                       "max_failures": 1, "keep_checkpoints": 1},
        "base": "tiny",
        "data": {"dataset": "mnist", "train_limit": 500, "eval_limit": 100},
        "fixed": {"train": {"max_steps": steps, "eval_every_steps": every, "batch_size": 50, "device": "cpu"},
                  "model": {"data_width": 8, "top_latents": 8}},
        "search": {"train.lr": {"type": "float", "low": 1.0e-4, "high": 2.0e-2, "log": True}},
        "scheduler": {"grace_period": 1, "reduction_factor": 2},
        "sampler": {"seed": 0},
        "mlflow": {"sample_images": 9},
        "export": {"iwae_k": 4, "limit": 40, "top_trials": 3},
    }
    if "strategy" not in sections:
        # the tests were written for TPE's searcher (Optuna states, pruned trials): tpe+asha, or tpe with
        # scheduler: {type: none}, as before the default became random+asha
        space["sampler"]["type"] = "tpe"
    space["experiment"].update(sections.pop("experiment", {}))
    space.update(sections)
    return space


def write_space(folder: Path, name: str, space: dict[str, Any] | None = None, **kw: Any) -> Path:
    """`space` (default: small_space(name, **kw)) as FOLDER/NAME.yaml."""
    import yaml
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space if space is not None else small_space(name, **kw), sort_keys=False))
    return path


# ---- photographs ---------------------------------------------------------------------------------------
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "camera", "hubble_deep_field",
          "retina", "coins", "moon", "grass", "brick")


def write_photos(folder) -> list:
    """scikit-image's bundled photographs as files, some JPEG, some PNG, some in a subfolder; returns
    their arrays."""
    import numpy as np
    import skimage.data
    from PIL import Image

    arrays = []
    for i, name in enumerate(PHOTOS):
        array = np.asarray(getattr(skimage.data, name)())
        sub = Path(folder) / ("more" if i % 3 == 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{i:02d}_{name}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(array).save(path, quality=95)
        arrays.append(array)
    (Path(folder) / "notes.txt").write_text("not an image, skipped")
    return arrays


# ---- what a search left --------------------------------------------------------------------------------
def mlflow_runs(uri: str, experiment: str | None = None):
    """(client, parent runs, child runs) in the store at `uri` (one experiment, or all)."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        ids = [found.experiment_id] if found is not None else []
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, max_results=5000) if ids else []
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    kids = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, kids


def optuna_study(exp_dir: Path):
    """The search's Optuna study as anyone can read it, during or after the search: its journal file
    in the search folder, through Optuna's public API."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    storage = JournalStorage(JournalFileBackend(str(Path(exp_dir) / "optuna.journal")))
    return optuna.load_study(study_name=Path(exp_dir).name, storage=storage)
