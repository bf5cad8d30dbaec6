"""The strategy tables of README.md and docs/strategies.md, generated from the committed JSON, so that no
figure is copied by hand:

    python -m search.bench tables            # rewrite every generated table in the docs
    python -m search.bench tables --check    # exit 1 (one line naming it) if a table differs from its JSON

A generated table sits between two markers in the Markdown, the first naming what makes it:

    <!-- generated: simulate docs/simulate-table.json [STRATEGY,...] -->
    ...
    <!-- end generated -->

Kinds: `simulate` (sim_report.markdown of a search.bench simulate report: the returned configuration's
true value, the best value seen, the compute to random's final best, the paired seeds won), `paired`
(real paired searches of search.bench compare, REPORT.json [PREDICTION.json]: per strategy the best
validation value and the test IWAE of the exported best, IQM [95% CI], the pairs won against
random+asha, and the table-mode prediction for the same seeds beside them), `measured` (README's table of
what was measured: measured.py, a row per committed JSON), `overhead` (docs/benchmarks.md's split of the
trial slots' time, from search.bench's JSON), `optuna` (docs/strategies.md's cost of a suggest, from
search.bench optuna's JSON), `scale` (README's driver-at-scale rows that record their machine).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..store.errors import RunError
from .sim_report import _ci

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/strategies.md", "docs/benchmarks.md")
BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def paired(report: dict[str, Any], prediction: dict[str, Any] | None) -> str:
    """Real paired searches (search.bench compare) and, beside them, the simulator's prediction for the
    same seeds (a search.bench simulate report in steps, with the same budget)."""
    seeds = sorted({r["seed"] for r in report["runs"]})
    full = f"{report['budget_steps'] / 160:g}" if report["budget_steps"] % 160 == 0 else "?"
    lines = ["| strategy | best val -ELBO, real | test IWAE of the exported best, real | pairs won (val; test) "
             "| best val -ELBO, table mode |", "| --- | --- | --- | --- | --- |"]
    for name, row in report["strategies"].items():
        wins = row.get("beats_random+asha")
        won = "-" if not wins else (f"{wins['val']['p'] * wins['val']['n']:g} of {wins['val']['n']}; "
                                    f"{wins['test_nll']['p'] * wins['test_nll']['n']:g} of {wins['test_nll']['n']}")
        predicted = "-"
        if prediction is not None:
            predicted = _ci(_predicted(prediction, name, seeds, report["budget_steps"]), 1)
        real = f"{_ci(row['final_best_iqm'], 1)} | {_ci(row['test_nll_iqm'], 1)}"
        lines.append(f"| `{name}` | {real} | {won} | {predicted} |")
    lines.append(f"\n{report['budget_steps']} training steps a search ({full} full trials), seeds "
                 f"{seeds[0]}-{seeds[-1]}; IQM [bootstrap 95% CI] over seeds.")
    return "\n".join(lines) + "\n"


def _predicted(prediction: dict[str, Any], strategy: str, seeds: list[int], steps: float) -> dict[str, Any]:
    """The table-mode best value at `steps` of the simulated runs with the real runs' seeds."""
    from .anytime import best_at, summary
    from .simulate import BEST
    values = [p[BEST] for r in prediction["runs"] if r["strategy"] == strategy and r["seed"] in seeds
              if (p := best_at(r["curve"], steps, "steps")) is not None]
    return summary(values) if values else {}


def render(spec: str) -> str:
    from .sim_report import markdown
    kind, *args = spec.split()
    try:
        data = [json.loads((ROOT / a).read_text()) for a in args if a.endswith(".json")]
    except (OSError, ValueError) as e:
        raise RunError(f"generated table {spec!r}: {e}; record it (docs/strategies.md says how)") from None
    if kind == "simulate":
        names = next((a.split(",") for a in args if not a.endswith(".json")), None)
        return markdown(data[0], names)
    if kind == "paired":
        return paired(data[0], data[1] if len(data) > 1 else None)
    if kind == "scale":
        from .measured import scale_table
        return scale_table(data[0])
    if kind == "optuna":
        from .measured import optuna_table
        return optuna_table(data[0])
    if kind == "overhead":
        from .measured import overhead_table
        return overhead_table(data[0])
    if kind == "measured":
        from .measured import table
        try:
            return table(ROOT)
        except (OSError, ValueError, KeyError) as e:
            raise RunError(f"generated table {spec!r}: {e!r}; record it (docs/benchmarks.md says how)") from None
    raise RunError(f"generated table {spec!r}: unknown kind {kind!r}; use simulate, paired, overhead, optuna, "
                   f"scale or measured")


def refresh(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("spec")) + m.group(4), text)


def main(argv: list[str]) -> int:
    from matnet.cli import ArgumentParser

    from matnet.outputs import write_text
    p = ArgumentParser(prog="python -m search.bench tables", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check: exit 1 if a table differs from its JSON")
    args = p.parse_args(argv)
    stale = []
    for doc in DOCS:
        path = ROOT / doc
        text = path.read_text()
        new = refresh(text)
        if new != text:
            stale.append(doc)
            if not args.check:
                write_text(path, new)
    if args.check and stale:
        print(f"tables out of date in {', '.join(stale)}; run python -m search.bench tables")
        return 1
    print(("rewrote the tables of " + ", ".join(stale)) if stale else "every generated table matches its JSON")
    return 0
