"""What many seeded runs of each strategy say, as the field reports it (Agarwal et al. 2021, "Deep RL at
the edge of the statistical precipice"): for each budget, the interquartile mean (IQM: the mean of
the middle half of the seeds) and median of the best value reached, and of the compute needed to
reach random search's final best at that budget, each with a bootstrap 95% confidence interval over
seeds; and the anytime curve, best value against compute, with its band.

Compute is training steps (all trials together); a budget is a number of full trials' worth of them.
A seed that never reached the target counts as not reached (infinite compute): the IQM is "not
reached" when that seed lands in the middle half.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..store.keys import reaches, sign

BASELINE = "random"
BOOTSTRAP = 2000


def best_at(curve: list[list[float]], steps: float) -> Optional[float]:
    """The best value a run had reached once it had spent `steps`."""
    reached = [best for spent, best in curve if spent <= steps]
    return reached[-1] if reached else None


def steps_to(curve: list[list[float]], target: float, mode: str, budget: float) -> float:
    for spent, best in curve:
        if spent > budget:
            break
        if reaches(best, target, mode):
            return float(spent)
    return math.inf


def iqm(values: np.ndarray) -> float:
    """The mean of the middle half (25% trimmed off each end; with ties at the cut, pro rata)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = len(v)
    if n == 0:
        return math.nan
    lo, hi = n * 0.25, n * 0.75
    weights = np.clip(np.minimum(np.arange(1, n + 1), hi) - np.maximum(np.arange(n), lo), 0, None)
    kept, w = v[weights > 0], weights[weights > 0]
    if np.isinf(kept).any():
        return math.inf if kept[-1] > 0 else -math.inf
    return float(np.sum(kept * w) / np.sum(w))


def summary(values: list[float], seed: int = 0) -> dict[str, Any]:
    """Median and IQM with bootstrap 95% confidence intervals (percentile bootstrap over seeds)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"n": 0}
    rng = np.random.default_rng(seed)
    samples = v[rng.integers(0, len(v), size=(BOOTSTRAP, len(v)))]
    iqms = np.asarray([iqm(s) for s in samples])
    medians = np.median(samples, axis=1)
    # "nearest": no interpolation between an infinite (not reached) and a finite resample
    out = {"n": int(len(v)), "iqm": iqm(v), "median": float(np.median(v)),
           "iqm_ci": [float(np.percentile(iqms, q, method="nearest")) for q in (2.5, 97.5)],
           "median_ci": [float(np.percentile(medians, q, method="nearest")) for q in (2.5, 97.5)]}
    return {k: (_finite_or_none(x) if not isinstance(x, list) else [_finite_or_none(y) for y in x])
            for k, x in out.items()}


def _finite_or_none(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def analyse(runs: list[Any], budgets_steps: list[int], full_trial_steps: int, mode: str,
            default: str, points: int = 60) -> dict[str, Any]:
    """Per budget and strategy: the final best and the compute to random's final best (summaries),
    and the anytime curve (IQM and its band at `points` compute levels)."""
    by: dict[str, list[Any]] = {}
    for r in runs:
        by.setdefault(r.strategy, []).append(r)
    out: dict[str, Any] = {"full_trial_steps": full_trial_steps, "mode": mode, "default": default, "budgets": {}}
    for budget in budgets_steps:
        finals = {s: [best_at(r.curve, budget) for r in rs] for s, rs in by.items()}
        baseline = [v for v in finals.get(BASELINE, []) if v is not None]
        target = float(np.median(baseline)) if baseline else None
        entry: dict[str, Any] = {"budget_steps": budget, "full_trials": budget / full_trial_steps,
                                 "target": target, "strategies": {}}
        grid = np.linspace(budget / points, budget, points)
        for s, rs in by.items():
            worst = max((v for v in finals[s] if v is not None), default=math.nan, key=lambda x: sign(mode) * x)
            values = [v if v is not None else worst for v in finals[s]]
            to_target = [steps_to(r.curve, target, mode, budget) / budget for r in rs] if target is not None else []
            curve = []
            for x in grid:
                at = [best_at(r.curve, x) for r in rs]
                at = [v for v in at if v is not None]
                if len(at) == len(rs):
                    st = summary(at)
                    curve.append([float(x), st["iqm"], st["iqm_ci"][0], st["iqm_ci"][1]])
            entry["strategies"][s] = {"final_best": summary(values),
                                      "fraction_to_target": summary(to_target) if to_target else {"n": 0},
                                      "seeds_reaching": int(sum(math.isfinite(f) for f in to_target)),
                                      "trials": summary([float(sum(1 for x in r.starts if x < budget))
                                                         for r in rs]),
                                      "decision_seconds_per_trial": summary(
                                          [r.decision_seconds / max(1, r.trials.get("total", 1)) for r in rs]),
                                      "curve": curve}
        out["budgets"][f"{budget / full_trial_steps:g}"] = entry
    return out


def verdict(report: dict[str, Any], default: str, rival: str = "random+asha") -> dict[str, Any]:
    """The issue's goal for the default: at budgets of 30 and 100 full trials, random search's final
    best within 1/3 of the budget (IQM); at 10, not worse than `rival` beyond the confidence intervals."""
    mode = report["mode"]
    out = {}
    for name, entry in report["budgets"].items():
        row = entry["strategies"].get(default)
        if row is None:
            continue
        frac = row["fraction_to_target"].get("iqm")
        d_ci, r_ci = row["final_best"].get("iqm_ci"), entry["strategies"].get(rival, {}).get("final_best", {}).get("iqm_ci")
        worse = None
        if d_ci and r_ci:  # beyond the intervals: the default's best case is worse than the rival's worst
            worse = sign(mode) * d_ci[0] > sign(mode) * r_ci[1]
        out[name] = {"fraction_to_target_iqm": frac, "within_a_third": frac is not None and frac <= 1 / 3,
                     f"worse_than_{rival}_beyond_ci": worse}
    return out


def print_report(report: dict[str, Any], metric: str) -> None:
    def f(x: Any, d: int = 2) -> str:
        return "-" if x is None else f"{x:.{d}f}"

    width = max([8] + [len(s) for e in report["budgets"].values() for s in e["strategies"]])
    for name, entry in report["budgets"].items():
        print(f"\nbudget {name} full trials ({entry['budget_steps']} steps); target: random's final best "
              f"{metric} (median over seeds) = {f(entry['target'])}")
        head = f"{'strategy':<{width}} {'best IQM [95% CI]':>26} {'compute to target IQM [CI]':>30} {'reach':>6} {'trials':>7}"
        print(head)
        print("-" * len(head))
        for s, row in entry["strategies"].items():
            b, t = row["final_best"], row["fraction_to_target"]
            frac = "not reached" if t.get("iqm") is None else f"{t['iqm']:.0%}"
            ci = t.get("iqm_ci") or [None, None]
            frac += f" [{'-' if ci[0] is None else f'{ci[0]:.0%}'}, {'-' if ci[1] is None else f'{ci[1]:.0%}'}]"
            print(f"{s:<{width}} {f(b['iqm']):>9} [{f(b['iqm_ci'][0])}, {f(b['iqm_ci'][1])}] {frac:>30} "
                  f"{row['seeds_reaching']:>3}/{b['n']:<2} {row['trials']['median']:>7.0f}")


def plot(report: dict[str, Any], metric: str, path: Path) -> Path:
    """The anytime curves, one panel per budget: best value against compute, IQM over seeds with its
    bootstrap 95% band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
            xs = [p[0] / report["full_trial_steps"] for p in pts]
            ax.plot(xs, [p[1] for p in pts], label=s, linewidth=1.5)
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], alpha=0.15)
            lows.append(min(p[2] for p in pts))
            quarter = [p[1] for p in pts if p[0] >= entry["budget_steps"] / 4]
            highs.append(quarter[0] if quarter else pts[-1][1])
        if entry["target"] is not None:
            ax.axhline(entry["target"], color="0.4", linestyle=":", linewidth=1)
        if lows and highs and max(highs) > min(lows):
            span = max(highs) - min(lows)
            ax.set_ylim(min(lows) - 0.05 * span, max(highs) + 0.05 * span)
        ax.set_title(f"budget: {name} full trials", fontsize=10)
        ax.set_xlabel("compute (full trials' worth of steps)")
        if i == 0:
            ax.set_ylabel(f"best {metric} (IQM, 95% CI)")
        ax.grid(alpha=0.3)
    fig.axes[-1].legend(fontsize=7)
    fig.tight_layout()
    from matnet.outputs import replacing
    with replacing(path) as tmp:
        fig.savefig(tmp)
    return path
