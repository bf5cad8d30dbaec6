"""A search's trials as the ledger recorded them: ranked, the best one and its best checkpoint."""
from __future__ import annotations

import json
from typing import Any

from . import storage
from .errors import ExportError
from .folder import SearchFolder
from .keys import STEP_KEY, is_finite, sign
from .ledger import TrialRecord
from .outcome import Outcome


def ranked(records: dict[str, TrialRecord], mode: str) -> list[TrialRecord]:
    """Best first by the trial's best value; trials without one last."""
    return sorted(records.values(), key=lambda r: (r.best_value is None, sign(mode) * (r.best_value or 0.0)))


def trial_rows(records: dict[str, TrialRecord], metric: str, mode: str) -> list[dict[str, Any]]:
    return [{"trial_id": r.trial_id, "status": r.outcome, f"best_{metric}": r.best_value, "iterations": r.iterations,
             "step": r.last.get(STEP_KEY), "params": r.current_params} for r in ranked(records, mode)]


def outcome_counts(records: dict[str, TrialRecord]) -> dict[str, int]:
    counts = {str(o): sum(1 for r in records.values() if r.outcome == str(o)) for o in Outcome}
    return {**{k: v for k, v in sorted(counts.items()) if v}, "total": len(records)}


def best_trial(folder: SearchFolder, records: dict[str, TrialRecord], metric: str, mode: str) -> TrialRecord:
    scored = [r for r in ranked(records, mode) if r.best_value is not None]
    if scored:
        return scored[0]
    failed = [r for r in records.values() if r.outcome == str(Outcome.ERROR)]
    if failed:
        raise ExportError(f"{folder.path}: no trial reported {metric}; {len(failed)} of {len(records)} trials failed, "
                          f"e.g. {failed[0].trial_id}: {failed[0].error} (details in each trial's error.txt)")
    raise ExportError(f"{folder.path}: no trial reported {metric} yet, so there is nothing to export; resume the "
                      f"search (python -m search.run SPACE --resume) and let trials report")


def best_checkpoint(folder: SearchFolder, record: TrialRecord, metric: str, mode: str) -> str:
    """The path (relative to the search folder) of the trial's kept checkpoint with the best value
    of `metric`, as its own meta.json records it (Tune deletes all but experiment.keep_checkpoints)."""
    kept = []
    for order, relative in enumerate(record.checkpoints):
        meta = folder.file(relative + "/meta.json")
        if not storage.exists(meta):
            continue
        value = json.loads(storage.read_text(meta)).get("metrics", {}).get(metric)
        score = sign(mode) * value if is_finite(value) else float("inf")
        kept.append((score, -order, relative))  # ties: the later checkpoint
    if not kept:
        raise ExportError(f"{folder.path}: trial {record.trial_id} (the best) kept no checkpoint; raise "
                          f"experiment.keep_checkpoints")
    return min(kept)[2]
