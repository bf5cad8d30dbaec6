"""Checkpoints: a directory holding `model.safetensors` (weights only), `config.json` (everything
needed to rebuild the model), `meta.json` (data set, step, metrics, versions, git revision) and, for
resuming training, `train_state.pt` (optimizer state and counters, loaded with weights_only=True).

Loading never unpickles code. Writing is atomic: a checkpoint is written beside the old one and
swapped in by renames, so an interrupted save never leaves a half-written checkpoint behind.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .build import AnyMatNet, build_model
from .config import Config, ConfigError
from .record import git_revision
from .userfiles import read_json

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
META = "meta.json"
TRAIN_STATE = "train_state.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message says which file and what to do."""


def versions() -> dict[str, str]:
    import numpy
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}


def save_checkpoint(path: str | Path, model: AnyMatNet, config: Config, meta: dict[str, Any],
                    train_state: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS))
    config.to_json(tmp / CONFIG)
    full_meta = {"image_shape": list(model.image_shape), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "versions": versions(), "git_revision": git_revision(), **meta}
    (tmp / META).write_text(json.dumps(full_meta, indent=2, default=float) + "\n")
    if train_state is not None:
        torch.save(train_state, tmp / TRAIN_STATE)
    swap_in(tmp, path)
    return path


def swap_in(staged: Path, path: Path) -> None:
    """Replace the folder `path` by the complete folder `staged` beside it: old -> .old, staged ->
    path, drop .old. A crash in between leaves one complete copy, which `_recover` puts back."""
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    staged.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def _recover(path: Path) -> None:
    """If a save was interrupted between its two renames, put the complete old copy back."""
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        old.rename(path)


def read_config(path: str | Path) -> tuple[Config, dict[str, Any]]:
    path = Path(path)
    _recover(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no checkpoint directory there; pass the folder that holds "
                              f"{CONFIG} and {WEIGHTS} (e.g. RUN_DIR/checkpoint)")
    for name in (CONFIG, META):
        if not (path / name).exists():
            raise CheckpointError(f"{path}: {name} is missing, so this is not a complete matnet checkpoint")
    fix = "the checkpoint is corrupt or from an incompatible version; restore it from a copy or retrain"
    try:
        config = Config.from_json(path / CONFIG, fix)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    meta = read_json(path / META, CheckpointError, fix)
    shape = meta.get("image_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3
                                  and all(type(v) is int and v > 0 for v in shape)):
        raise CheckpointError(f"{path / META}: image_shape {shape!r} is not [channels, height, width]; {fix}")
    if not isinstance(meta.get("metrics", {}), dict) or type(meta.get("step", 0)) is not int:
        raise CheckpointError(f"{path / META}: 'step' must be an integer and 'metrics' a mapping; {fix}")
    return config, meta


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if (path / WEIGHTS).is_file():
        try:
            return load_file(str(path / WEIGHTS))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path / WEIGHTS}: corrupt weights file ({e}); restore it or retrain") from None
    raise CheckpointError(f"{path}: no {WEIGHTS} there (weights are read from safetensors only, never unpickled); "
                          f"restore it or retrain")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[AnyMatNet, Config, dict[str, Any]]:
    """Rebuild the model from `config.json` (a MatNet, or a conditional one for data.task=impute) and
    load its weights. Errors are one line."""
    path = Path(path)
    config, meta = read_config(path)
    shape = tuple(meta.get("image_shape") or ())
    if len(shape) != 3:
        raise CheckpointError(f"{path / META}: no image_shape recorded; the checkpoint is incomplete")
    try:
        model = build_model(config, shape)
    except ConfigError as e:
        raise CheckpointError(f"{path / CONFIG}: describes a model that cannot be built ({e})") from None
    state = load_state_dict(path)
    missing, unexpected = model.state_dict().keys() - state.keys(), state.keys() - model.state_dict().keys()
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model in {CONFIG} ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected tensors, e.g. {sorted(missing | unexpected)[0]}); "
                              f"the checkpoint is from an incompatible version or was edited")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model in {CONFIG} "
                              f"({str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e})") from None
    return model.to(device).eval(), config, meta


# What resuming reads from train_state.pt, and the advice that works when it cannot be read: the
# weights and the step are in model.safetensors and meta.json, so training can go on from them with a
# new optimizer state (train.py, --fresh-optimizer).
TRAIN_STATE_KEYS = {"optimizer": dict, "step": int, "skipped_steps": int, "train_seconds": float, "warmup_steps": int}
FRESH_OPTIMIZER_ADVICE = ("rerun with --fresh-optimizer to go on from the checkpoint's weights and step with a "
                          "new optimizer state, or use a new --out folder")


def load_train_state(path: str | Path) -> dict[str, Any] | None:
    f = Path(path) / TRAIN_STATE
    if not f.exists():
        return None
    try:
        state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, a folder, or pickled code refused by weights_only
        raise CheckpointError(f"{f}: cannot be read ({type(e).__name__}); {FRESH_OPTIMIZER_ADVICE}") from None
    wrong = [k for k, tp in TRAIN_STATE_KEYS.items()
             if not isinstance(state, dict) or not isinstance(state.get(k), (int, float) if tp is float else tp)]
    if wrong:
        raise CheckpointError(f"{f}: not a training state (no valid {', '.join(wrong)}); {FRESH_OPTIMIZER_ADVICE}")
    return state
