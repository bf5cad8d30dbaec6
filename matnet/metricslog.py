"""A run's metrics.jsonl: one JSON object per evaluation, appended as training goes.

A line can be torn: the disk filled up or the power went while it was written. The checkpoint, swapped
in whole after the line (checkpoint.save_checkpoint), is the truth of where the run is; so a reader
skips a line that is not a complete JSON object with its step (and says so), and a resumed run drops
it with every line after its checkpoint's step, instead of failing on every rerun until someone edits
the file by hand.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def parse_lines(raw: bytes) -> tuple[list[dict[str, Any]], int]:
    """The complete metric lines of a file's bytes, and how many other non-empty lines it had."""
    good, bad = [], 0
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict) and type(value.get("step")) is int:
            good.append(value)
        else:
            bad += 1
    return good, bad


def _say_dropped(path: Path, bad: int, why: str) -> None:
    if bad:
        print(f"note: {path}: {bad} incomplete or unreadable line{'s' * (bad > 1)} {why}", file=sys.stderr)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The metric lines of a metrics.jsonl as dicts (incomplete lines skipped, with a note)."""
    path = Path(path)
    good, bad = parse_lines(path.read_bytes())
    _say_dropped(path, bad, "skipped")
    return good


def keep_through(path: str | Path, step: int) -> int:
    """Keep only the complete lines of steps <= `step` (those the checkpoint at `step` has seen); the
    rest will be redone. The file is replaced atomically. Returns how many lines were dropped."""
    from .outputs import write_text

    path = Path(path)
    if not path.exists():
        return 0
    raw = path.read_bytes()
    good, bad = parse_lines(raw)
    keep = [m for m in good if m["step"] <= step]
    dropped = len(good) - len(keep) + bad
    # Rewritten also when the last line has no newline: the next line appended would be glued to it.
    if dropped or (raw and not raw.endswith(b"\n")):
        _say_dropped(path, bad, f"dropped (the checkpoint at step {step} is what the run resumes from)")
        write_text(path, "".join(json.dumps(m) + "\n" for m in keep))
    return dropped
