"""The trial ledger: the search's own plain-data record of its trials, STORAGE/NAME/trials.json.

It is kept current at the cost of the trials that changed, not of the whole search: a change appends
the trial's record as one line to trials.log, and trials.json is written whole (atomically) only
when the log has grown twice as long as the search has trials, and at the end; then the log is
emptied.
Readers take trials.json and apply the log's lines on top (a torn last line, from a crash while it
was written, is left out). An object store cannot append, so there trials.json is written whole,
at most every few seconds.

For every trial: its parameters, how it ended (outcome.py), its best value of the search metric, how
far it got, the checkpoints Tune registered for it (paths relative to the search folder) and, under
population-based training, its lineage (whose checkpoint it continued from, with which parameters).
The export, the final table and a resumed search read this file, never Tune's pickled experiment
state (which would run whatever code a damaged or hostile search folder put there). It is written by
a Tune callback on the driver (search/tune/callbacks.py); this module needs no Ray.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from . import storage
from .errors import SearchFolderError
from .folder import SearchFolder
from .keys import ITERATION_KEY, KEPT_KEYS, STEP_KEY, better, is_finite
from .outcome import Outcome, classify


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
    # PBT: every exploitation, oldest first: {"step": where it went on from, "from_trial": whose
    # checkpoint that was, "params": its parameters from then on}.
    lineage: list[dict[str, Any]] = field(default_factory=list)

    def observe(self, result: dict[str, Any], metric: str, mode: str) -> None:
        self.iterations = int(result.get(ITERATION_KEY, self.iterations + 1))
        self.last = {k: result[k] for k in (*KEPT_KEYS, metric) if k in result and _plain(result[k])}
        value = result.get(metric)
        if is_finite(value) and better(float(value), self.best_value, mode):
            self.best_value, self.best_step = float(value), result.get(STEP_KEY)

    def end(self, metric: str, errored: bool = False, error: Optional[str] = None) -> None:
        """The trial ended (Tune says so), as `classify` rules from its last result."""
        self.outcome = str(classify(self.last, metric, errored=errored))
        if errored:
            self.error = error

    @property
    def ended(self) -> bool:
        return Outcome(self.outcome).ended

    @property
    def current_params(self) -> dict[str, Any]:
        """The parameters the trial trains with now: its last exploitation's, else the drawn ones."""
        return dict(self.lineage[-1]["params"]) if self.lineage else dict(self.params)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, str)) or is_finite(value)


def _record(raw: dict[str, Any]) -> TrialRecord:
    known = {f.name for f in fields(TrialRecord)}
    return TrialRecord(**{k: v for k, v in raw.items() if k in known})


def read_records(folder: SearchFolder) -> dict[str, TrialRecord]:
    """trial id -> record, as the ledger last wrote them (empty before any trial started)."""
    records: dict[str, TrialRecord] = {}
    if storage.exists(folder.ledger):
        try:
            raw = json.loads(storage.read_text(folder.ledger))
            records = {tid: _record(r) for tid, r in raw["trials"].items()}
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
            raise SearchFolderError(f"{folder.ledger}: not a trial ledger ({type(e).__name__}: {e}); the search "
                                    f"folder is damaged") from None
    if not storage.is_uri(folder.path) and Path(folder.ledger_log).is_file():
        lines = Path(folder.ledger_log).read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = _record(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as e:
                if i >= len(lines) - 2:  # the last line, torn by a crash while it was appended
                    break
                raise SearchFolderError(f"{folder.ledger_log}: line {i + 1} is not a trial record ({e}); the "
                                        f"search folder is damaged") from None
            records[record.trial_id] = record
    return records


def write_records(folder: SearchFolder, records: dict[str, TrialRecord]) -> None:
    """The whole ledger, written atomically; the log of changes, now in it, emptied."""
    text = json.dumps({"trials": {tid: asdict(r) for tid, r in records.items()}}, indent=1) + "\n"
    storage.write_text(folder.ledger, text)
    if not storage.is_uri(folder.path):
        Path(folder.ledger_log).unlink(missing_ok=True)


def append_records(folder: SearchFolder, records: list[TrialRecord]) -> None:
    """The changed records, one line each, at the end of trials.log (a local folder only)."""
    with open(folder.ledger_log, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(asdict(r), separators=(",", ":")) + "\n" for r in records))


def error_line(error_file: Optional[str]) -> str:
    """The last line of a failed trial's error file (Tune's error.txt: the exception), or a generic note."""
    try:
        text = Path(error_file).read_text() if error_file else ""
    except OSError:
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:5000] if lines else "trial failed (see its error.txt)"


def end_running(folder: SearchFolder, metric: str) -> int:
    """Trials the search's budget cut short: Tune ends them without telling its callbacks, so they
    are ended here (pruned, or completed if their last result was their last). Returns how many."""
    records = read_records(folder)
    running = [r for r in records.values() if not r.ended]
    for r in running:
        r.end(metric)
    if running:
        write_records(folder, records)
    return len(running)
