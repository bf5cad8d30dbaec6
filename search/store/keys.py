"""The keys of a trial's results that the platform reads, and what "better" means: one owner.

A trial reports matnet.train's metrics (matnet/train.py) flattened by search/tune/trainable.py, plus
the keys below. The ledger, the searcher, the MLflow callback, the budget stop and the simulator read
them from here, so a name changes in one place.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

STEP_KEY = "step"                    # matnet's training step of the report
ITERATION_KEY = "training_iteration" # Tune's count of reports (ASHA's time attribute)
STATUS_KEY = "status"                # running / diverged, as the trial itself reports it
FINAL_KEY = "final"                  # matnet.train: this evaluation is the run's last
ERROR_KEY = "error"                  # the first line of why a trial diverged
TRAIN_CALL_KEY = "train_call_s"      # seconds inside matnet.train so far (search.bench's training share)
REPORT_TIME_KEY = "report_s"         # ... of which handing earlier results and checkpoints to Tune
SETUP_TIME_KEY = "trial_setup_s"     # seconds of the trial's call before matnet.train started
NODE_KEY = "ray_node_id"             # the Ray node that ran the report
KL_PER_LAYER = "val_kl_per_layer"    # matnet.train's list of per-layer KLs ...
KL_PREFIX = "val_kl_"                # ... reported flat: val_kl_0, val_kl_1, ... (Tune keeps scalars)
LINEAGE_KEY = "exploited"            # PBT: this report is the first after cloning another trial's checkpoint

# Result keys worth keeping in the ledger besides the metric (what a table or the export shows).
KEPT_KEYS = (STEP_KEY, "epoch", ITERATION_KEY, FINAL_KEY, STATUS_KEY, "train_seconds", TRAIN_CALL_KEY,
             REPORT_TIME_KEY, SETUP_TIME_KEY, NODE_KEY,
             "gpu_ids", "device", ERROR_KEY)


def kl_key(layer: int) -> str:
    return f"{KL_PREFIX}{layer}"


def kl_per_layer(result: Mapping[str, Any]) -> list[float] | None:
    """The per-layer KLs of a flat result, in layer order (None when it has none)."""
    layers = sorted(int(k[len(KL_PREFIX):]) for k in result if k.startswith(KL_PREFIX) and k[len(KL_PREFIX):].isdigit())
    return [result[kl_key(i)] for i in layers] or None


def is_finite(value: Any) -> bool:
    """A real number that can be ranked (not a bool, NaN or an infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def sign(mode: str) -> float:
    """+1 for min, -1 for max: `sign(mode) * value` is smaller for a better value."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    return 1.0 if mode == "min" else -1.0


def better(a: float, b: float | None, mode: str) -> bool:
    """`a` is better than `b` (None: nothing yet) under `mode`."""
    return b is None or sign(mode) * a < sign(mode) * b


def reaches(value: float, target: float, mode: str) -> bool:
    """`value` is at least as good as `target` under `mode`."""
    return sign(mode) * value <= sign(mode) * target


def direction(mode: str) -> str:
    """Optuna's name for `mode`."""
    return "minimize" if sign(mode) > 0 else "maximize"
