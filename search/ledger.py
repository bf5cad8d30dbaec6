"""The trial ledger: the search's own plain-data record of its trials, STORAGE/NAME/trials.json.

A Tune callback on the driver keeps, for every trial: its parameters, how it ended
(search/outcome.py), its best value of the search metric, how far it got, and the checkpoints Tune
registered for it (paths relative to the search folder). The export, the final table and a resumed
search read this file, never Tune's pickled experiment state (which would run whatever code a
damaged or hostile search folder put there), and it needs no private part of Tune to be written.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from ray.tune import Callback

from . import storage
from .folder import SearchFolder
from .outcome import Outcome, classify

logger = logging.getLogger(__name__)

# Results keys worth keeping in the ledger besides the metric (what a table or the export shows).
KEPT_KEYS = ("step", "epoch", "training_iteration", "final", "status", "train_seconds", "train_call_s", "ray_node_id",
             "gpu_ids", "device", "error")


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, Any]
    outcome: str = str(Outcome.RUNNING)
    iterations: int = 0                      # results reported
    best_value: Optional[float] = None       # best finite value of the search metric
    best_step: Optional[int] = None
    last: dict[str, Any] = field(default_factory=dict)   # the last result's KEPT_KEYS and metric
    checkpoints: list[str] = field(default_factory=list)  # relative to the search folder, oldest first
    error: Optional[str] = None              # the last line of the trial's error, when it failed

    def observe(self, result: dict[str, Any], metric: str, mode: str) -> None:
        self.iterations = int(result.get("training_iteration", self.iterations + 1))
        self.last = {k: result[k] for k in (*KEPT_KEYS, metric) if k in result and _plain(result[k])}
        value = result.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            if self.best_value is None or (value < self.best_value if mode == "min" else value > self.best_value):
                self.best_value, self.best_step = float(value), result.get("step")

    @property
    def ended(self) -> bool:
        return Outcome(self.outcome).ended


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))


def read_records(folder: SearchFolder) -> dict[str, TrialRecord]:
    """trial id -> record, as the ledger last wrote them (empty before any trial started)."""
    if not storage.exists(folder.ledger):
        return {}
    try:
        raw = json.loads(storage.read_text(folder.ledger))
        known = {f.name for f in fields(TrialRecord)}
        return {tid: TrialRecord(**{k: v for k, v in r.items() if k in known}) for tid, r in raw["trials"].items()}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
        from .folder import SearchFolderError
        raise SearchFolderError(f"{folder.ledger}: not a trial ledger ({type(e).__name__}: {e}); the search folder "
                                f"is damaged") from None


def write_records(folder: SearchFolder, records: dict[str, TrialRecord]) -> None:
    text = json.dumps({"trials": {tid: asdict(r) for tid, r in records.items()}}, indent=1) + "\n"
    storage.write_text(folder.ledger, text)


def end_running(folder: SearchFolder) -> int:
    """Trials the search's time budget cut short: Tune ends them without telling its callbacks, so
    they are ended here (pruned, or completed if their last result was their last). Returns how many."""
    records = read_records(folder)
    running = [r for r in records.values() if not r.ended]
    for r in running:
        r.outcome = str(classify(r.last, ended=True))
    if running:
        write_records(folder, records)
    return len(running)


class TrialLedger(Callback):
    """Keeps trials.json up to date from Tune's callback hooks (on the driver)."""

    def __init__(self, folder: SearchFolder, metric: str, mode: str, min_interval_s: float = 2.0):
        self.folder = folder
        self.metric = metric
        self.mode = mode
        self.min_interval_s = min_interval_s
        self.records: dict[str, TrialRecord] = {}
        self._dirty = False
        self._written_at = 0.0

    def setup(self, **info: Any) -> None:
        # A resumed search goes on from the ledger it wrote, not from Tune's pickled copy of this callback.
        self.records = read_records(self.folder)

    def get_state(self) -> Optional[dict]:
        return None  # the ledger file is the state

    def _record(self, trial: Any) -> TrialRecord:
        record = self.records.get(trial.trial_id)
        if record is None:
            record = self.records[trial.trial_id] = TrialRecord(trial.trial_id, dict(trial.config))
        return record

    def _write(self, force: bool = True) -> None:
        if not force and time.monotonic() - self._written_at < self.min_interval_s:
            self._dirty = True
            return
        try:
            write_records(self.folder, self.records)
            self._dirty, self._written_at = False, time.monotonic()
        except OSError as e:  # a full disk or a storage hiccup must not stop the search; the next write retries
            self._dirty = True
            logger.warning("trial ledger not written (%s): %s", self.folder.ledger, e)

    # ---- Tune hooks ------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.outcome = str(Outcome.RUNNING)  # also a trial restarted after a failure or a resume
        self._write()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._record(trial).observe(result, self.metric, self.mode)
        self._write(force=False)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        relative = storage.relative_to(checkpoint.path, self.folder.path)
        record = self._record(trial)
        if relative is not None and relative not in record.checkpoints:
            record.checkpoints.append(relative)
        self._write(force=False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.outcome = str(classify(trial.last_result, ended=True))
        self._write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.outcome = str(classify(trial.last_result, errored=True))
        record.error = error_line(trial)
        self._write()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._dirty:
            self._write(force=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._write()


def error_line(trial: Any) -> str:
    """The last line of a failed trial's error file (the exception), or a generic note."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:5000] if lines else "trial failed (see its error.txt)"
