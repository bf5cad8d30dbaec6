"""matnet.train's --out folder: what it may write there, and where a run in it resumes from.

    check_run_folder(out, config)                   # before any data is loaded
    point = resume_point(out, config, device)       # None: nothing to resume, train from step 0

Training writes config.json, metrics.jsonl, kl_per_layer.png and checkpoint/ in its run folder
(folders.py) and nothing else; it resumes the run that is there. So it refuses, as one line, an --out
that is a file; that is a checkpoint folder or inside one (training into RUN/checkpoint would overwrite
that checkpoint's config.json, or nest a new run in RUN/checkpoint/checkpoint); that is a search folder;
that cannot be written to; whose checkpoint/ is something other than a matnet checkpoint (a save
replaces that folder whole); whose config.json is not a matnet config, or (with no checkpoint yet)
describes another model or data. A run folder whose checkpoint holds another model or data is refused
when it is resumed (same_run).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import folders
from .checkpoint import FRESH_OPTIMIZER_ADVICE, CheckpointError, load_checkpoint, load_train_state
from .config import Config, ConfigError
from .outputs import check_folder_writable


# The settings a run may change when it goes on from a checkpoint and still be the same run, as
# population-based training changes them (search/tune/strategies/pbt.py): each is read from the config
# at every step (matnet/train.py, step.py), none shapes a tensor, none is kept in the optimizer's saved
# state (which restores Adam's betas and weight decay), and none changes the training budget.
CONTINUABLE_KEYS = ("train.lr", "train.kl_warmup_steps", "train.inference_reg_weight", "train.grad_clip")


def same_run(a: Config, b: Config) -> bool:
    """A run folder may be resumed with other stopping limits (and other train settings), not with
    another model or data."""
    return a.model == b.model and a.data == b.data


def check_run_folder(out: str | Path, config: Config) -> None:
    if not str(out).strip():  # Path("") is the working folder
        raise ConfigError("--out: an empty path; give the run folder, e.g. --out runs/NAME")
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; training writes a run folder (config.json, metrics.jsonl, "
                          f"checkpoint/): give the path of a folder")
    owner = folders.enclosing_checkpoint(out)
    if owner is not None:
        resume = (f"to go on training its run, give the run folder {owner.parent}"
                  if owner.name == folders.RUN_CHECKPOINT and folders.is_run(owner.parent) else
                  "to train from it, copy it elsewhere first")
        where = "is a checkpoint folder" if owner == out.resolve() else f"is inside the checkpoint folder {owner}"
        raise ConfigError(f"--out {out}: {where}, not a run folder, and training would overwrite its files; "
                          f"{resume}; to train a new model give a new folder")
    found = folders.foreign(out)
    if found is not None:
        raise ConfigError(f"--out {out}: is a {found[0]} folder, not a run folder; train into a new folder")
    check_folder_writable(out, "--out")
    if not out.is_dir():
        return
    for name in (folders.RUN_CONFIG, folders.RUN_METRICS, folders.RUN_PLOT):
        if (out / name).exists() and not (out / name).is_file():
            raise ConfigError(f"--out {out}: {out / name} is not a file, so this is not a run folder training can "
                              f"write; use a new --out folder")
    ckpt = out / folders.RUN_CHECKPOINT
    has_checkpoint = ckpt.exists() or (out / f".{folders.RUN_CHECKPOINT}.old").exists()
    if ckpt.exists() and not folders.is_checkpoint(ckpt) and (not ckpt.is_dir() or any(ckpt.iterdir())):
        raise ConfigError(f"--out {out}: {ckpt} is not a matnet checkpoint (no model.safetensors, meta.json), and "
                          f"each save replaces that folder whole; move it away or use a new --out folder")
    if (out / folders.RUN_CONFIG).is_file() and not has_checkpoint:
        # No checkpoint yet: config.json alone says whose folder this is. (With a checkpoint, its own
        # config is the truth, and config.json is rewritten; resume_point compares them.)
        try:
            saved = Config.from_json(out / folders.RUN_CONFIG)
        except ConfigError as e:
            raise ConfigError(f"--out {out}: its config.json is not a matnet run's ({e}); training does not "
                              f"overwrite it: use a new --out folder") from None
        if not same_run(saved, config):
            raise ConfigError(f"--out {out}: its config.json describes another model or data (a run with no "
                              f"checkpoint yet); use a new --out folder, or delete {out / folders.RUN_CONFIG} "
                              f"to start this run there")


@dataclass
class ResumePoint:
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None  # None: the optimizer starts afresh (fresh_optimizer)
    counters: dict[str, Any]          # step, skipped_steps, train_seconds, warmup_steps
    metrics: dict[str, Any]           # the checkpoint's last metrics


def resume_point(out: str | Path, config: Config, device: torch.device,
                 fresh_optimizer: bool = False) -> ResumePoint | None:
    """What a run in `out` resumes from: its checkpoint's weights, and train_state.pt's optimizer
    state and counters. With `fresh_optimizer` (train_state.pt missing or unreadable), the counters come
    from meta.json and the optimizer starts afresh: training goes on from the weights and the step, no
    longer identical to an uninterrupted run (Adam's moments start from zero)."""
    ckpt = Path(out) / folders.RUN_CHECKPOINT
    if not (ckpt.exists() or ckpt.with_name(f".{folders.RUN_CHECKPOINT}.old").exists()):
        return None
    saved_model, saved_cfg, meta = load_checkpoint(ckpt, device)
    if not same_run(saved_cfg, config):
        raise ConfigError(f"{out} holds a run with another model or data config; "
                          f"use a new --out directory, or the same settings to resume it")
    metrics = meta.get("metrics", {})
    if fresh_optimizer:
        counters = {"step": meta.get("step", 0), "skipped_steps": int(metrics.get("skipped_steps", 0)),
                    "warmup_steps": int(metrics.get("warmup_steps", -1)),
                    "train_seconds": float(metrics.get("train_seconds", 0.0))}
        return ResumePoint(saved_model.state_dict(), None, counters, metrics)
    ts = load_train_state(ckpt)
    if ts is None:
        raise CheckpointError(f"{ckpt}: no train_state.pt to resume from; {FRESH_OPTIMIZER_ADVICE}")
    counters = {k: ts[k] for k in ("step", "skipped_steps", "train_seconds", "warmup_steps")}
    return ResumePoint(saved_model.state_dict(), ts["optimizer"], counters, metrics)


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any], ckpt: Path) -> None:
    """The saved optimizer state into `opt`, or a one-line error when it does not fit its parameters
    (torch checks the group sizes, not the shapes of the moments: a wrong shape would fail at the first
    step, with a traceback)."""
    bad = f"{ckpt / 'train_state.pt'}: its optimizer state does not fit this model's parameters; {FRESH_OPTIMIZER_ADVICE}"
    # A state saved by the unfused Adam of older runs carries fused=None, which would switch this
    # optimizer's fusing off again (and with it the device-side skip of step.py): keep its own.
    impl = {k: opt.defaults[k] for k in ("fused", "foreach", "capturable") if k in opt.defaults}
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError):
        raise CheckpointError(bad) from None
    for group in opt.param_groups:
        group.update(impl)
    for group in opt.param_groups:
        for p in group["params"]:
            for v in opt.state.get(p, {}).values():
                if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                    raise CheckpointError(bad)
