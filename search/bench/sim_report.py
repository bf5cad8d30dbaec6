"""What search.bench simulate shows: the terminal table, the anytime plot (PNG), and the Markdown tables
the docs carry, generated from the committed JSON (docs_tables.py writes them into the docs; a test
keeps the docs equal to their JSON)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(x: Any, d: int = 2) -> str:
    if x is None:
        return "-"
    return f"{(0.0 if round(x, d) == 0 else x):.{d}f}"  # never "-0.00"


def _pct(x: Any) -> str:
    return "-" if x is None else f"{x:.0%}"


def _frac(t: dict[str, Any]) -> str:
    ci = t.get("iqm_ci") or [None, None]
    head = "not reached" if t.get("iqm") is None else _pct(t["iqm"])
    return f"{head} [{_pct(ci[0])}, {_pct(ci[1])}]"


def _ci(summary: dict[str, Any], d: int = 2) -> str:
    ci = summary.get("iqm_ci") or [None, None]
    return f"{_f(summary.get('iqm'), d)} [{_f(ci[0], d)}, {_f(ci[1], d)}]"


def budget_line(entry: dict[str, Any], metric: str) -> str:
    unit = entry["unit"]
    amount = f"{entry['budget']:.0f} trial seconds" if unit == "seconds" else f"{entry['budget']:.0f} steps"
    return (f"budget {entry['full_trials']:g} full trials ({amount}); target: random's final best {metric} "
            f"(median over seeds) = {_f(entry['target'])}")


def print_report(report: dict[str, Any], metric: str) -> None:
    rival = report["rival"]
    width = max([8] + [len(s) for e in report["budgets"].values() for s in e["strategies"]])
    for entry in report["budgets"].values():
        print("\n" + budget_line(entry, metric))
        head = (f"{'strategy':<{width}} {'best seen IQM [95% CI]':>26} {'returned, true value':>26} "
                f"{'norm. regret':>12} {'compute to target [CI]':>24} {'reach':>6} {'beats ' + rival:>18} "
                f"{'trials':>6}")
        print(head)
        print("-" * len(head))
        for name, row in entry["strategies"].items():
            beats = row.get(f"beats_{rival}", {})
            print(f"{name:<{width}} {_ci(row['final_best']):>26} {_ci(row['returned_true']):>26} "
                  f"{_f(row['normalized_regret'].get('iqm')):>12} {_frac(row['fraction_to_target']):>24} "
                  f"{row['seeds_reaching']:>3}/{row['final_best']['n']:<2} {_pct(beats.get('p')):>18} "
                  f"{row['trials']['median']:>6.0f}")


def markdown(report: dict[str, Any], strategies: list[str] | None = None) -> str:
    """One row per strategy, one column per budget: the true value of the returned configuration (IQM
    [95% CI]), the best value seen, the compute to random's final best, and the share of paired seeds
    won against the rival."""
    rival = report["rival"]
    budgets = list(report["budgets"].items())
    names = strategies or list(budgets[0][1]["strategies"])
    lines = ["| strategy | " + " | ".join(f"{name} full trials" for name, _ in budgets) + " |",
             "| --- |" + " --- |" * len(budgets)]
    for s in names:
        cells = []
        for _, entry in budgets:
            row = entry["strategies"].get(s)
            if row is None:
                cells.append("-")
                continue
            beats = row.get(f"beats_{rival}")
            cells.append(f"{_ci(row['returned_true'], 1)}; seen {_f(row['final_best'].get('iqm'), 1)}; "
                         f"{_frac(row['fraction_to_target'])}" + (f"; wins {_pct(beats['p'])}" if beats else ""))
        lines.append(f"| `{s}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], metric: str, path: Path) -> Path:
    """The anytime curves, one panel per budget: best value against compute, IQM over seeds with its
    bootstrap 95% band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from matnet.outputs import replacing

    unit = report["unit"]
    per_full = report["full_trial"][unit]
    budgets = list(report["budgets"].items())
    fig = Figure(figsize=(4.6 * len(budgets), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    for i, (name, entry) in enumerate(budgets):
        ax = fig.add_subplot(1, len(budgets), i + 1)
        lows, highs = [], []
        for s, row in entry["strategies"].items():
            pts = [p for p in row["curve"] if p[1] is not None]
            if not pts:
                continue
            xs = [p[0] / per_full for p in pts]
            ax.plot(xs, [p[1] for p in pts], label=s, linewidth=1.5)
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], alpha=0.15)
            lows.append(min(p[2] for p in pts))
            quarter = [p[1] for p in pts if p[0] >= entry["budget"] / 4]
            highs.append(quarter[0] if quarter else pts[-1][1])
        if entry["target"] is not None:
            ax.axhline(entry["target"], color="0.4", linestyle=":", linewidth=1)
        if lows and highs and max(highs) > min(lows):
            span = max(highs) - min(lows)
            ax.set_ylim(min(lows) - 0.05 * span, max(highs) + 0.05 * span)
        ax.set_title(f"budget: {name} full trials", fontsize=10)
        ax.set_xlabel(f"compute (full trials' worth of {unit})")
        if i == 0:
            ax.set_ylabel(f"best {metric} seen (IQM, 95% CI)")
        ax.grid(alpha=0.3)
    fig.axes[-1].legend(fontsize=7)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp)
    return path
