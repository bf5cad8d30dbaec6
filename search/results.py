"""A search's trials as the ledger recorded them: ranked, the best one and its best checkpoint, and
the table printed at the end of a search."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import storage
from .folder import SearchFolder
from .outcome import Outcome

if TYPE_CHECKING:  # the ledger's module imports Ray (its callback); the records are plain data
    from .ledger import TrialRecord


class ExportError(RuntimeError):
    """A search that cannot be exported; the message says why and what to do."""


def ranked(records: dict[str, TrialRecord], mode: str) -> list[TrialRecord]:
    """Best first by the trial's best value; trials without one last."""
    sign = 1.0 if mode == "min" else -1.0
    return sorted(records.values(), key=lambda r: (r.best_value is None, sign * (r.best_value or 0.0)))


def trial_rows(records: dict[str, TrialRecord], metric: str, mode: str) -> list[dict[str, Any]]:
    return [{"trial_id": r.trial_id, "status": r.outcome, f"best_{metric}": r.best_value, "iterations": r.iterations,
             "step": r.last.get("step"), "params": dict(r.params)} for r in ranked(records, mode)]


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
    sign = 1.0 if mode == "min" else -1.0
    kept = []
    for order, relative in enumerate(record.checkpoints):
        meta = folder.file(relative + "/meta.json")
        if not storage.exists(meta):
            continue
        value = json.loads(storage.read_text(meta)).get("metrics", {}).get(metric)
        score = sign * value if isinstance(value, (int, float)) else float("inf")
        kept.append((score, -order, relative))  # ties: the later checkpoint
    if not kept:
        raise ExportError(f"{folder.path}: trial {record.trial_id} (the best) kept no checkpoint; raise "
                          f"experiment.keep_checkpoints")
    return min(kept)[2]


def short_name(key: str) -> str:
    """train.lr -> lr, model.meta_modules.14x14.width -> mm.14x14.width (table headers)."""
    key = key.replace("model.meta_modules.", "mm.")
    for section in ("model.", "train.", "data."):
        key = key.removeprefix(section)
    return key


def print_table(rows: list[dict[str, Any]], metric: str, top: int, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    shown = rows[:top]
    params: list[str] = []
    for row in shown:
        params += [k for k in row["params"] if k not in params]
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("trial")
    table.add_column("status")
    table.add_column(f"best {metric}", justify="right")
    table.add_column("reports", justify="right")
    for k in params:
        table.add_column(short_name(k), justify="right", overflow="fold")
    for i, row in enumerate(shown, 1):
        value = row[f"best_{metric}"]
        cells = [str(i), row["trial_id"], row["status"], "-" if value is None else f"{value:.3f}", str(row["iterations"])]
        for k in params:
            x = row["params"].get(k)
            cells.append("" if x is None else (f"{x:.3g}" if isinstance(x, float) else str(x)))
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # a log file: wide enough for every column
        console = Console(width=max(120, min(400, 30 + 13 * (len(params) + 5))))
    console.print(table)
