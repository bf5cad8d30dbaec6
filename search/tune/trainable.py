"""The Ray Tune function trainable: one trial = one call of `matnet.train.train`.

Every evaluation of `train()` becomes one Tune result (an "epoch" for the scheduler) with the matnet
checkpoint directory just written, so Tune keeps, ranks and restores matnet checkpoints as they
are. A trial that Tune restarts (a crash, a lost worker, a resumed search, a pause) gets its last
checkpoint back from `tune.get_checkpoint()`; it is copied to `RUN_DIR/checkpoint`, from where
`train()` resumes on its own, exactly where it stopped.

matnet.train writes its run folder (checkpoint, history metrics.jsonl) in a scratch folder of the
node, outside the trial's folder (which Tune syncs to the storage as artifacts: the checkpoints would
travel twice, and a sync could catch a file half-written), removed when the trial's call ends. The
history is copied into every checkpoint reported, so it goes where the checkpoint goes (the search's
storage, shared on a cluster), comes back with it when the trial restarts elsewhere (the history
goes on, not from scratch), and reaches the trial's MLflow run at its end, where the driver draws
Figure 4 from it (search/tracking/callback.py): a trial spends its time training, not redrawing a
figure at every report. So does `trial.json`, which names the trial that wrote the
checkpoint: a trial that population-based training moved onto another trial's checkpoint (an
exploitation) sees a checkpoint of another trial, and says so in its next result (LINEAGE_KEY).

The trial side knows nothing of MLflow: the driver logs every result (search/tracking/), so
trials on other nodes need no access to the tracking server.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from matnet.folders import RUN_CHECKPOINT, RUN_METRICS

from ..store.disk import refused_write
from ..store.keys import (ERROR_KEY, KL_PER_LAYER, LINEAGE_KEY, NODE_KEY, REPORT_TIME_KEY, SETUP_TIME_KEY, STATUS_KEY,
                          TRAIN_CALL_KEY, kl_key)
from ..store.outcome import Outcome

# matnet.train's files beside the checkpoint that travel inside every reported checkpoint.
TRAINING_FILES = (RUN_METRICS,)
TRIAL_FILE = "trial.json"  # who wrote a reported checkpoint: {"trial_id", "step", "params"}


def flat_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Scalars only: list-valued metrics become one key per entry (val_kl_per_layer -> val_kl_0, ...)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                out[kl_key(i) if k == KL_PER_LAYER else f"{k}_{i}"] = x
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out


def check_gpu(cfg: Any, gpu_ids: str, trial_id: str) -> None:
    """A trial that Ray gave a GPU (its id in CUDA_VISIBLE_DEVICES) but that finds no usable CUDA
    device says so in one line: with train.device auto it trains on the CPU (a warning), with cuda
    it fails (a one-line error, the trial's MLflow error tag)."""
    import torch

    from matnet.config import ConfigError

    if not gpu_ids or torch.cuda.is_available():
        return
    note = (f"trial {trial_id}: Ray assigned it GPU {gpu_ids} but torch finds no usable CUDA device "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}, torch {torch.__version__})")
    if cfg.train.device.startswith("cuda"):
        raise ConfigError(f"{note}; check the node's NVIDIA driver and torch's CUDA build, or set train.device: cpu")
    print(f"warning: {note}; training on the CPU", file=sys.stderr, flush=True)


def restore_checkpoint(run_dir: Path, trial_id: str) -> dict[str, Any] | None:
    """Start `run_dir` from exactly what Tune knows: its last checkpoint for this trial, or nothing.
    Returns the lineage entry when that checkpoint was written by another trial (PBT's exploit)."""
    from ray import tune

    shutil.rmtree(run_dir / RUN_CHECKPOINT, ignore_errors=True)
    shutil.rmtree(run_dir / f".{RUN_CHECKPOINT}.old", ignore_errors=True)
    restored = tune.get_checkpoint()
    if restored is None:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    with restored.as_directory() as d:
        shutil.copytree(d, run_dir / RUN_CHECKPOINT, ignore=shutil.ignore_patterns(*TRAINING_FILES, TRIAL_FILE))
        for name in TRAINING_FILES:  # matnet.train cuts the history back to the checkpoint's step
            if (Path(d) / name).is_file():
                shutil.copy2(Path(d) / name, run_dir / name)
        writer = json.loads((Path(d) / TRIAL_FILE).read_text()) if (Path(d) / TRIAL_FILE).is_file() else {}
    if writer.get("trial_id") in (None, trial_id):
        return None
    return {"from_trial": writer["trial_id"], "step": writer.get("step")}


# How long a trial whose storage refused a write (a full disk) waits before it fails. The driver stops
# the whole search when the disk of its folder fills up (search/tune/faults.py), and the trial is then
# continued by --resume from its last checkpoint; failing at once would use up its restarts
# (experiment.max_failures) on a disk that is still full and end it as an error, which a resume does
# not run again. A disk the driver does not watch (another node's scratch space) still fails it.
REFUSED_WRITE_WAIT_S = 60.0


def wait_to_be_stopped() -> None:
    time.sleep(REFUSED_WRITE_WAIT_S)


def run_trial(config: dict[str, Any], space: Any) -> None:
    """The trial: `config` holds the parameters Optuna drew; `space` (search.space.Space) turns
    them into a matnet Config."""
    import logging

    entered = time.monotonic()
    import torch
    from ray import tune

    # Ray logs a line for every checkpoint persisted; the trial table says enough.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    experiment = space.settings.experiment
    cfg = space.trial_config(config)
    # Ray sets OMP_NUM_THREADS to the trial's CPUs; torch's intra-op pool should match it.
    torch.set_num_threads(max(1, int(experiment.resources.cpu)))

    trial_id = tune.get_context().get_trial_id()
    run_dir = Path(tempfile.mkdtemp(prefix=f"matnet-trial-{trial_id}-")) / "run"
    try:
        _train_trial(config, space, cfg, trial_id, run_dir, entered)
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)


def _train_trial(config: dict[str, Any], space: Any, cfg: Any, trial_id: str, run_dir: Path, entered: float) -> None:
    import ray
    from ray import tune

    from matnet.device import resolve_device
    from matnet.nonfinite import NonFiniteLossError
    from matnet.train import train

    experiment = space.settings.experiment
    exploited = restore_checkpoint(run_dir, trial_id)

    # Time inside train() except the time spent handing results and checkpoints to Tune: the
    # part of a trial slot that does useful work (search.bench reports it, and where the rest went).
    clock = {"start": time.monotonic(), "in_report": 0.0}
    # Which Ray node ran this (part of the) trial: node_ip alone cannot tell apart nodes that share a
    # host; logged as a tag of the trial's MLflow run.
    node_id = ray.get_runtime_context().get_node_id()
    gpu_ids = ",".join(str(i) for i in ray.get_gpu_ids())
    check_gpu(cfg, gpu_ids, trial_id)
    device = str(resolve_device(cfg.train.device))
    last: dict[str, Any] = {}

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        nonlocal exploited
        t0 = time.monotonic()
        flat = flat_metrics(metrics)
        flat[STATUS_KEY] = str(Outcome.RUNNING)
        flat[TRAIN_CALL_KEY] = t0 - clock["start"] - clock["in_report"]
        flat[REPORT_TIME_KEY] = clock["in_report"]
        flat[SETUP_TIME_KEY] = clock["start"] - entered
        flat[NODE_KEY] = node_id
        flat["gpu_ids"], flat["device"] = gpu_ids, device  # the GPUs Ray gave this trial, the device it used
        if exploited is not None:  # the first result since this trial went on from another's checkpoint
            flat[LINEAGE_KEY] = {**exploited, "params": dict(config)}
            exploited = None
        last.clear()
        last.update(flat)
        ckpt = None
        if checkpoint_dir is not None:
            for name in TRAINING_FILES:
                if (run_dir / name).is_file():
                    shutil.copy2(run_dir / name, Path(checkpoint_dir) / name)
            (Path(checkpoint_dir) / TRIAL_FILE).write_text(json.dumps(
                {"trial_id": trial_id, "step": flat.get("step"), "params": dict(config)}) + "\n")
            ckpt = tune.Checkpoint.from_directory(str(checkpoint_dir))
        tune.report(flat, checkpoint=ckpt)
        clock["in_report"] += time.monotonic() - t0

    try:
        train(cfg, run_dir, report=report, progress=False, draw_figure=False)
    except OSError as e:
        if refused_write(e) is not None:
            wait_to_be_stopped()
        raise
    except NonFiniteLossError as e:
        # End this trial with a clear status; the search goes on. No checkpoint: the last good one
        # stays the trial's latest. The metric is NaN: ASHA ignores NaN when it ranks trials (an
        # infinity would distort its cut-offs), Optuna is told FAIL (search/store/outcome.py).
        final = {k: v for k, v in last.items() if k != LINEAGE_KEY}
        final.update({STATUS_KEY: str(Outcome.DIVERGED), ERROR_KEY: str(e).splitlines()[0][:300],
                      experiment.metric: math.nan})
        tune.report(final)
