"""What of a Tune result every tracking back-end logs: its finite numbers, less Ray's bookkeeping,
under names that group the per-layer KLs (MLflow's charts and TensorBoard's scalars both make a
section of a `prefix/` name)."""
from __future__ import annotations

import math
from typing import Any

from ..store.keys import KL_PREFIX, STEP_KEY

STATUS_TAG = "status"  # a trial's outcome (search/store/outcome.py); MLflow's parent run: the search's state
# Result keys that say nothing about the model: Ray's, and matnet's step, which each back-end keeps as
# every value's step (logged as a metric too, it was the first axis MLflow's compare page offered).
NOT_LOGGED = {STEP_KEY, "pid", "timestamp", "time_this_iter_s", "iterations_since_restore", "time_since_restore",
            "should_checkpoint", "done", "date", "hostname", "node_ip", "trial_id", "experiment_tag",
            "config", "checkpoint_dir_name", "experiment_id"}


def numeric_metrics(result: dict[str, Any], first: str | None = None) -> dict[str, float]:
    """The finite numbers of a Tune result, less Ray's bookkeeping, under their logged names; `first`
    (the search's metric) leads: MLflow's compare page plots a run's first-logged metric by default."""
    out = {}
    for k, v in sorted(result.items(), key=lambda item: item[0] != first):
        if k in NOT_LOGGED or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out[metric_name(k)] = float(v)
    return out


def metric_name(key: str) -> str:
    """A result's key as logged: the per-layer KLs val_kl_0, val_kl_1, ... (Tune's names, flat) become
    val_kl/0, val_kl/1, ..., one section in each back-end's charts."""
    layer = key[len(KL_PREFIX):]
    return f"{KL_PREFIX[:-1]}/{layer}" if key.startswith(KL_PREFIX) and layer.isdigit() else key
