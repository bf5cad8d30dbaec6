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


def params_text(params: dict[str, Any]) -> str:
    """A trial's parameters as short `name=value` pairs (full names and values: summary.json)."""
    def value(x: Any) -> str:
        return f"{x:.3g}" if isinstance(x, float) else str(x)
    return "  ".join(f"{short_name(k)}={value(v)}" for k, v in params.items())


def print_table(rows: list[dict[str, Any]], metric: str, top: int, title: str) -> None:
    """The best trials, in a table that fits the terminal (80 columns or more; a log gets 100): one
    row per trial, its parameters wrapped in the last column."""
    import shutil
    import sys

    from rich.console import Console
    from rich.table import Table

    width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    table = Table(title=title, title_justify="left", show_lines=True, box=None, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("trial", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column(f"best {metric}", justify="right", no_wrap=True)
    table.add_column("reports", justify="right", no_wrap=True)
    table.add_column("parameters", overflow="fold", ratio=1)
    for i, row in enumerate(rows[:top], 1):
        value = row[f"best_{metric}"]
        table.add_row(str(i), row["trial_id"], row["status"], "-" if value is None else f"{value:.3f}",
                      str(row["iterations"]), params_text(row["params"]))
    Console(width=max(80, width), highlight=False, soft_wrap=False).print(table)


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
