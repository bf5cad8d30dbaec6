"""Table replay: a simulated trial replays a curve that was really trained, never a prediction
(the field's tabular back-end: Syne Tune's simulated tabular back-end with a nearest-neighbour
lookup; HPOBench's and YAHPO's tables). The strategy simulator (simulate.py) and the real-search
replay (replay.py) take it in place of the surrogate (surrogate.py).

- The table: the recorded configurations with at least `min_seeds` runs (seeds) each, every run's
  whole curve as recorded (metric and seconds of every report, a divergence where it happened).
- Lookup: a suggested configuration takes the curves of the nearest recorded configuration, by
  Euclidean distance with every parameter put on [0, 1] (a log-scaled float by its log, an int by its
  value, a choice by its index among the choices) and a parameter the configuration does not draw
  (a `when:`, a repeat block's unused item) at -1, so that a configuration with one meta-module is
  never the neighbour of one with two when one with one was recorded.
- Seeds: every trial of a real search trains with the space's one `train.seed`, so two trials of
  the same configuration in one search train alike. A simulated search (its seed S) gives every
  trial of recorded configuration C the same recorded seed, picked by a hash of (S, C) and kept for
  the whole trial; another search seed may pick another. No trial can report a value that no real
  run of its configuration reported.
- Seconds: what a report costs depends on the configuration (its layers, widths), not on the seed
  (the 10 configurations recorded with 5 seeds on a quiet machine: 1-7 % apart), so every seed of a
  configuration replays the seconds of its first recorded run (the lowest seed). The shipped repeats
  were partly recorded beside other jobs, which slowed their reports; the first runs were not.
- The true value of a configuration at a step: the mean over its recorded seeds of the metric at that
  report (a seed that diverged before it left out). It is what a user who takes that configuration
  can expect, and what a search's returned configuration is scored on (simulate.py).
"""
from __future__ import annotations

import hashlib
import math
import statistics
from typing import Any, Optional

import numpy as np

from .curves import Curve, CurvesError, CurveSet, Report

MIN_CONFIGS = 20


def unit_row(dists: dict[str, Any], params: dict[str, Any]) -> list[float]:
    """The parameters on [0, 1] each (their distributions' own ranges), -1 for one not drawn."""
    from ..space.nodes import decode
    out = []
    for name, dist in dists.items():
        if name not in params:
            out.append(-1.0)
            continue
        if getattr(dist, "type", "") == "categorical":
            choices = dist.choices
            out.append(choices.index(decode(dist, params[name])) / max(1, len(choices) - 1))
            continue
        low, high, value = float(dist.low), float(dist.high), float(params[name])
        if dist.log:
            low, high, value = math.log(low), math.log(high), math.log(value)
        out.append(0.0 if high == low else min(1.0, max(0.0, (value - low) / (high - low))))
    return out


def _value_at(curve: Curve, index: int) -> Optional[float]:
    if index < len(curve.reports):
        return curve.reports[index].value
    return None


class TableModel:
    """What simulate.py asks of a model of a space's curves, from recorded curves only."""
    kind = "table"

    def __init__(self, curves: CurveSet, space: Any, min_seeds: int = 3):
        self.curves, self.space = curves, space
        self.steps = list(curves.report_steps)
        by_id: dict[int, list[Curve]] = {}
        for c in curves.curves:
            by_id.setdefault(c.id, []).append(c)
        self.runs = {i: sorted(cs, key=lambda c: c.seed) for i, cs in sorted(by_id.items()) if len(cs) >= min_seeds}
        if len(self.runs) < MIN_CONFIGS:
            raise CurvesError(f"{curves.space_file}: {len(self.runs)} configurations have {min_seeds} or more seeds; "
                              f"table replay needs at least {MIN_CONFIGS} (record more with --repeats, or lower "
                              f"--table-seeds)")
        self.ids = list(self.runs)
        self.dists = space.distributions()
        self.points = np.asarray([unit_row(self.dists, self.runs[i][0].params) for i in self.ids])
        n = len(self.steps)
        # [configurations, reports]: the mean over seeds (NaN where no seed has a value there)
        self.means = np.asarray([[_mean([_value_at(c, k) for c in self.runs[i]]) for k in range(n)] for i in self.ids])
        finals = [v for v in self.means[:, -1] if not math.isnan(v)]
        self.best_true, self.median_true, self.worst_true = min(finals), statistics.median(finals), max(finals)
        self.full_seconds = statistics.median(sum(r.seconds for r in runs[0].reports) for runs in self.runs.values()
                                              if runs[0].complete and len(runs[0].reports) == n)

    def nearest(self, params: dict[str, Any]) -> int:
        """The index (in self.ids) of the recorded configuration nearest to `params`."""
        row = np.asarray(unit_row(self.dists, params))
        return int(np.argmin(np.sum((self.points - row) ** 2, axis=1)))

    def recorded_id(self, params: dict[str, Any]) -> int:
        return self.ids[self.nearest(params)]

    def curve(self, params: dict[str, Any], seed: int) -> list[Report]:
        """The trial's curve in a search with seed `seed`: one recorded seed of the nearest recorded
        configuration, the same one for every trial of that configuration in that search."""
        config_id = self.recorded_id(params)
        runs = self.runs[config_id]
        pick = int.from_bytes(hashlib.sha256(f"{seed}#{config_id}".encode()).digest()[:8], "little") % len(runs)
        timing = runs[0].reports
        return [Report(r.step, r.value, timing[k].seconds if k < len(timing) else r.seconds)
                for k, r in enumerate(runs[pick].reports)]

    def true_value(self, params: dict[str, Any], step: int) -> float:
        """The mean over the recorded seeds of the nearest recorded configuration at `step`'s report;
        a configuration no seed of which has a value there scores the table's worst."""
        k = self.steps.index(step) if step in self.steps else len(self.steps) - 1
        value = self.means[self.nearest(params), k]
        return self.worst_true if math.isnan(value) else float(value)


def _mean(values: list[Optional[float]]) -> float:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else math.nan
