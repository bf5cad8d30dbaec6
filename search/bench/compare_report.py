"""What search.bench compare's real runs say: per strategy, the best value against the steps spent,
the steps to random search's final best, the test IWAE of each exported best, IQM with bootstrap CIs
(anytime.py) and the seeds won against random+asha run with the same seed; the terminal table and
the plot."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store.keys import reaches
from ..tune import strategies
from . import anytime
from .anytime import BASELINE, RIVAL, last_within

DEFAULT = strategies.DEFAULT


@dataclass
class RunResult:
    strategy: str
    seed: int
    curve: list[list[float]]          # [steps spent, best value so far]
    spent: int
    trials: dict[str, int]            # outcome -> count
    test_nll_nats: float | None
    iwae: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> float | None:
        return self.curve[-1][1] if self.curve else None

    def steps_to(self, target: float, mode: str) -> int | None:
        for steps, best in self.curve:
            if reaches(best, target, mode):
                return int(steps)
        return None


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def value_at(result: RunResult, steps: float) -> float | None:
    """The best value a real run had reached once it had spent `steps` (its curve: [steps, best])."""
    point = last_within(result.curve, steps)
    return None if point is None else point[1]


def _paired(runs: list[RunResult], rival: list[RunResult], strategy: str, mode: str) -> dict[str, Any]:
    """Seed by seed against the rival (random+asha): the share of pairs won on the best validation
    value and on the test IWAE of the exported best (a tie counts half)."""
    theirs = {r.seed: r for r in rival}
    pairs = [(r, theirs[r.seed]) for r in runs if r.seed in theirs]
    if strategy == RIVAL or not pairs:
        return {}
    val = [(a.final, b.final) for a, b in pairs if a.final is not None and b.final is not None]
    test = [(a.test_nll_nats, b.test_nll_nats) for a, b in pairs
            if a.test_nll_nats is not None and b.test_nll_nats is not None]
    return {f"beats_{RIVAL}": {"val": anytime.paired_wins([a for a, _ in val], [b for _, b in val], mode),
                               "test_nll": anytime.paired_wins([a for a, _ in test], [b for _, b in test], "min")}}


def analyse(results: list[RunResult], budget: int, mode: str) -> dict[str, Any]:
    by_strategy: dict[str, list[RunResult]] = {}
    for r in results:
        by_strategy.setdefault(r.strategy, []).append(r)
    baseline = [r.final for r in by_strategy.get(BASELINE, []) if r.final is not None]
    target = statistics.median(baseline) if baseline else None
    grid = [budget * i / 40 for i in range(1, 41)]
    table = {}
    for strategy, runs in by_strategy.items():
        reach = [r.steps_to(target, mode) for r in runs] if target is not None else []
        reached = [s for s in reach if s is not None]
        # The median of the steps each seed needed; a seed that never reached it counts as more
        # than the whole budget, so the median is "not reached" when half the seeds did not.
        ordered = sorted(s if s is not None else math.inf for s in reach)
        median_steps = statistics.median(ordered) if ordered else None
        table[strategy] = {
            "final_best": _spread([r.final for r in runs if r.final is not None]),
            "steps_to_random_best": {"median": None if median_steps in (None, math.inf) else median_steps,
                                     "fraction_of_budget": None if median_steps in (None, math.inf)
                                     else median_steps / budget,
                                     "seeds_reaching": len(reached), "seeds": len(runs)},
            "test_nll_nats": _spread([r.test_nll_nats for r in runs if r.test_nll_nats is not None]),
            "trials": _spread([float(r.trials.get("total", 0)) for r in runs]),
            # the field's summaries (anytime.py): IQM with a bootstrap 95% CI over seeds, and the seeds
            # where this strategy's exported best beat the rival's run with the same seed
            "final_best_iqm": anytime.summary([r.final for r in runs if r.final is not None]),
            "test_nll_iqm": anytime.summary([r.test_nll_nats for r in runs if r.test_nll_nats is not None]),
            **_paired(runs, by_strategy.get(RIVAL, []), strategy, mode),
            "curve": [[x, _spread([v for v in (value_at(r, x) for r in runs) if v is not None])] for x in grid],
        }
    verdict = None
    if DEFAULT in table and BASELINE in table:
        fraction = table[DEFAULT]["steps_to_random_best"]["fraction_of_budget"]
        default_nll, random_nll = table[DEFAULT]["test_nll_nats"]["median"], table[BASELINE]["test_nll_nats"]["median"]
        verdict = {"target": target, "fraction_of_budget": fraction,
                   "within_a_third": fraction is not None and fraction <= 1 / 3,
                   "test_nll_at_least_as_good": None if default_nll is None or random_nll is None
                   else default_nll <= random_nll}
    return {"budget_steps": budget, "random_final_best_median": target, "strategies": table, "verdict": verdict}


def print_report(report: dict[str, Any], metric: str) -> None:
    def fmt(x: float | None, digits: int = 2) -> str:
        return "-" if x is None else f"{x:.{digits}f}"
    budget = report["budget_steps"]
    print(f"\nbudget: {budget} training steps per run; target: random search's final best {metric} "
          f"(median over seeds) = {fmt(report['random_final_best_median'])}")
    header = f"{'strategy':<16} {'best at budget':>24} {'steps to target':>22} {'test NLL (IWAE)':>24} {'trials':>7}"
    print(header)
    print("-" * len(header))
    for strategy, row in report["strategies"].items():
        b, s, t = row["final_best"], row["steps_to_random_best"], row["test_nll_nats"]
        steps = "not reached" if s["median"] is None else f"{s['median']:.0f} ({s['fraction_of_budget']:.0%})"
        steps += f" {s['seeds_reaching']}/{s['seeds']}"
        print(f"{strategy:<16} {fmt(b['median']):>8} [{fmt(b['min'])}-{fmt(b['max'])}] {steps:>22} "
              f"{fmt(t['median']):>8} [{fmt(t['min'])}-{fmt(t['max'])}] {row['trials']['median']:>7.0f}")
    for strategy, row in report["strategies"].items():
        pairs = row.get(f"beats_{RIVAL}")
        if pairs and pairs["test_nll"].get("n"):
            v, t = row["final_best_iqm"], row["test_nll_iqm"]
            print(f"{strategy}: IQM best {fmt(v.get('iqm'))}, test NLL {fmt(t.get('iqm'))}; against {RIVAL} seed by "
                  f"seed it won {pairs['val']['p']:.0%} of {pairs['val']['n']} pairs on the best value, "
                  f"{pairs['test_nll']['p']:.0%} on test NLL")
    verdict = report.get("verdict")
    if verdict:
        print(f"\nthe platform's default ({DEFAULT}) reached random search's final best with "
              + ("none of its seeds' budget (not reached)" if verdict["fraction_of_budget"] is None
                 else f"{verdict['fraction_of_budget']:.0%} of the budget")
              + f" (goal: at most 33%: {'met' if verdict['within_a_third'] else 'NOT met'}); its test NLL is "
              + ("at least as good" if verdict["test_nll_at_least_as_good"] else "NOT as good")
              + " as random search's (median over seeds)")


def plot(report: dict[str, Any], metric: str, path: Path) -> Path:
    """Best value so far against training steps spent, per strategy: the median over seeds, and the
    band between the best and the worst seed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for strategy, row in report["strategies"].items():
        points = [(x, v) for x, v in row["curve"] if v["median"] is not None]
        if not points:
            continue
        xs = [x for x, _ in points]
        ax.plot(xs, [v["median"] for _, v in points], label=strategy, linewidth=1.6)
        ax.fill_between(xs, [v["min"] for _, v in points], [v["max"] for _, v in points], alpha=0.15)
    target = report["random_final_best_median"]
    if target is not None:
        ax.axhline(target, color="0.4", linestyle=":", linewidth=1, label="random search's final best")
    # The first results (untrained models, hundreds of nats worse) would squash the part that decides
    # the comparison: show from the best seed's value up to the worst median a quarter into the budget.
    lows = [v["min"] for row in report["strategies"].values() for _, v in row["curve"] if v["min"] is not None]
    highs = [next((v["median"] for x, v in row["curve"] if v["median"] is not None and x >= report["budget_steps"] / 4),
                  None) for row in report["strategies"].values()]
    highs = [h for h in highs if h is not None]
    if lows and highs and max(highs) > min(lows):
        span = max(highs) - min(lows)
        ax.set_ylim(min(lows) - 0.05 * span, max(highs) + 0.05 * span)
    ax.set_xlabel("training steps spent (all trials)")
    ax.set_ylabel(f"best {metric} so far")
    ax.set_title("Best value vs compute (median over seeds; band: best to worst seed)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from matnet.outputs import replacing
    with replacing(path) as tmp:
        fig.savefig(tmp)
    return path


