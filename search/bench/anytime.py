"""What many seeded runs of each strategy say, as the field reports it (Agarwal et al. 2021, "Deep RL at
the edge of the statistical precipice"): for each budget, the interquartile mean (IQM: the mean of
the middle half of the seeds) and median of the best value reached, and of the compute needed to
reach random search's final best at that budget, each with a bootstrap 95% confidence interval over
seeds; and the anytime curve, best value against compute, with its band. Beside the best value seen,
what a user gets: the true value of the configuration the search returns, its regret against the best
configuration, and how often it beats `random+asha` run with the same seed (normalized regret and
paired wins, as HPO benchmarks report them: Eggensperger et al. 2021, HPOBench).

Compute is trial seconds by default (all trials together; steps as a second view); a budget is a
number of full trials' worth of it (a full trial: the median recorded one). A seed that never reached
the target counts as not reached (infinite compute): the IQM is "not reached" when that seed lands
in the middle half.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..store.keys import reaches, sign
from .simulate import BEST, SECONDS, STEPS, TRUE

BASELINE = "random"   # "random search's final best": the target the compute is measured to
RIVAL = "random+asha"  # the strategy the default is paired against, seed by seed
BOOTSTRAP = 2000


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


def best_at(curve: list[list[float]], amount: float, unit: str = "seconds") -> Optional[list[float]]:
    """The result point (simulate.py's [steps, seconds, best, true]) a run was at once it had spent
    `amount` of `unit`; None before its first result."""
    return last_within(curve, amount, STEPS if unit == "steps" else SECONDS)


def last_within(curve: list[list[float]], amount: float, spent: int = 0) -> Optional[list[float]]:
    """The last point of a curve whose spent compute (its column `spent`) is within `amount`: a
    simulated run's result points, a real run's [steps, best] (compare_report.py); None before the first."""
    reached = [p for p in curve if p[spent] <= amount]
    return reached[-1] if reached else None


def spent_to(curve: list[list[float]], target: float, mode: str, amount: float, unit: str) -> float:
    """The compute (of `unit`) a run had spent when its best first reached `target`; inf: not within `amount`."""
    k = STEPS if unit == "steps" else SECONDS
    for p in curve:
        if p[k] > amount:
            break
        if reaches(p[BEST], target, mode):
            return float(p[k])
    return math.inf


def paired_wins(mine: list[float], theirs: list[float], mode: str, seed: int = 0) -> dict[str, Any]:
    """The share of paired seeds where `mine` is better than `theirs` (a tie counts half), with a
    percentile-bootstrap 95% CI over the pairs."""
    s = sign(mode)
    wins = np.asarray([1.0 if s * a < s * b else 0.5 if a == b else 0.0 for a, b in zip(mine, theirs)])
    if len(wins) == 0:
        return {"n": 0}
    boots = wins[np.random.default_rng(seed).integers(0, len(wins), size=(BOOTSTRAP, len(wins)))].mean(axis=1)
    return {"n": int(len(wins)), "p": float(wins.mean()),
            "ci": [float(np.percentile(boots, q, method="nearest")) for q in (2.5, 97.5)]}


def analyse(runs: list[Any], budgets: list[float], full: dict[str, float], mode: str, default: str,
            reference: dict[str, float], unit: str = "seconds", rival: str = RIVAL, points: int = 60) -> dict[str, Any]:
    """Per budget (in full trials) and strategy, with compute counted in `unit` (steps as a second
    view): the best value seen and the true value of the configuration returned (summaries), its
    regret against the best configuration (`reference`: best and median true value of the model's
    configurations; normalized: 0 the best, 1 the median configuration), the share of seeds where it
    beats `rival` (paired by seed), the compute to random search's final best, and the anytime curve."""
    by: dict[str, list[Any]] = {}
    for r in runs:
        by.setdefault(r.strategy, []).append(r)
    for rs in by.values():
        rs.sort(key=lambda r: r.seed)
    s = sign(mode)
    best, median = reference["best_true"], reference["median_true"]
    out: dict[str, Any] = {"unit": unit, "full_trial": full, "mode": mode, "default": default, "rival": rival,
                           "reference": reference, "budgets": {}}
    for b in budgets:
        amount = b * full[unit]
        at = {name: [best_at(r.curve, amount, unit) for r in rs] for name, rs in by.items()}
        baseline = [p[BEST] for p in at.get(BASELINE, []) if p is not None]
        target = float(np.median(baseline)) if baseline else None
        entry: dict[str, Any] = {"budget": amount, "unit": unit, "full_trials": b, "target": target, "strategies": {}}
        grid = np.linspace(amount / points, amount, points)
        rival_true = [p[TRUE] if p else None for p in at.get(rival, [])]
        for name, rs in by.items():
            finals = [p[BEST] if p else None for p in at[name]]
            trues = [p[TRUE] if p else None for p in at[name]]
            worst = max((v for v in finals if v is not None), default=math.nan, key=lambda x: s * x)
            worst_true = max((v for v in trues if v is not None), default=math.nan, key=lambda x: s * x)
            finals = [v if v is not None else worst for v in finals]
            trues = [v if v is not None else worst_true for v in trues]
            row: dict[str, Any] = {
                "final_best": summary(finals),
                "returned_true": summary(trues),
                "regret": summary([s * (v - best) for v in trues]),
                "normalized_regret": summary([(v - best) / (median - best) if median != best else 0.0 for v in trues]),
            }
            if rival in by and name != rival and len(rival_true) == len(trues):
                row[f"beats_{rival}"] = paired_wins(trues, [v if v is not None else worst_true for v in rival_true],
                                                     mode)
            for view in dict.fromkeys([unit, "steps"]):
                cap = b * full[view]
                to = [spent_to(r.curve, target, mode, cap, view) / cap for r in rs] if target is not None else []
                row["fraction_to_target" + ("" if view == unit else f"_{view}")] = summary(to) if to else {"n": 0}
                if view == unit:
                    row["seeds_reaching"] = int(sum(math.isfinite(f) for f in to))
            k = STEPS if unit == "steps" else SECONDS
            row["trials"] = summary([float(sum(1 for x in r.starts if x[k] < amount)) for r in rs])
            row["decision_seconds_per_trial"] = summary([r.decision_seconds / max(1, r.trials.get("total", 1))
                                                         for r in rs])
            curve = []
            for x in grid:
                got = [p[BEST] for p in (best_at(r.curve, x, unit) for r in rs) if p is not None]
                if len(got) == len(rs):
                    st = summary(got)
                    curve.append([float(x), st["iqm"], st["iqm_ci"][0], st["iqm_ci"][1]])
            row["curve"] = curve
            entry["strategies"][name] = row
        out["budgets"][f"{b:g}"] = entry
    return out


def verdict(report: dict[str, Any], default: str, rival: str = RIVAL) -> dict[str, Any]:
    """The issue's goals for the default, per budget: random search's final best within a quarter of
    its compute (IQM) with the CI's upper end under a third (the goal at 30 and 100 full trials), and
    the returned configuration's true value not worse than `rival`'s (IQM; the goal at 10)."""
    s = sign(report["mode"])
    out = {}
    for name, entry in report["budgets"].items():
        row = entry["strategies"].get(default)
        if row is None:
            continue
        frac, ci = row["fraction_to_target"].get("iqm"), row["fraction_to_target"].get("iqm_ci") or [None, None]
        mine = row["returned_true"].get("iqm")
        theirs = entry["strategies"].get(rival, {}).get("returned_true", {}).get("iqm")
        out[name] = {"fraction_to_target_iqm": frac, "within_a_quarter": frac is not None and frac <= 1 / 4,
                     "ci_under_a_third": ci[1] is not None and ci[1] < 1 / 3,
                     f"true_not_worse_than_{rival}": None if mine is None or theirs is None else s * mine <= s * theirs}
    return out
