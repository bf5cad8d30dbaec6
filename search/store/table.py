"""The table of a search's best trials, printed at the end of a search and by search.export."""
from __future__ import annotations

from typing import Any

from .ledger import TrialRecord


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


def lineage_lines(records: dict[str, TrialRecord]) -> list[str]:
    """Population-based training's exploitations, one line each (none for other strategies)."""
    events = sorted(((r.trial_id, e) for r in records.values() for e in r.lineage), key=lambda x: (x[1].get("step") or 0, x[0]))
    if not events:
        return []
    lines = [f"pbt: {len(events)} exploitations (a trial went on from a better trial's checkpoint, with its "
             f"parameters mutated):"]
    for trial_id, e in events:
        params = ", ".join(f"{short_name(k)}={v:.3g}" if isinstance(v, float) else f"{short_name(k)}={v}"
                           for k, v in sorted((e.get("params") or {}).items()))
        lines.append(f"  step {e.get('step')}: {trial_id} took {e.get('from_trial')}'s checkpoint; {params}")
    return lines
