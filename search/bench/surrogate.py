"""A surrogate of recorded learning curves: the whole curve of any configuration of a space (the
metric at every report, the seconds each report takes), with the training noise the recording
measured. The strategy simulator (simulate.py) trains its trials on it.

- Features: each searched parameter as a number (a log-scaled float in its log, a choice as its value
  when numeric else its index); a parameter a configuration does not draw (a `when:`, a repeat block's
  unused item) as its own value below the range, so the trees can tell it apart.
- Curves: scikit-learn's extra-trees regressor (Geurts et al. 2006) over the log of the metric at every
  report, one multi-output model, so a predicted curve keeps its shape; another over each report's
  seconds; a random-forest classifier of whether a configuration diverges (its loss went non-finite),
  and at which report it did, as recorded.
- Noise: the configurations recorded with several seeds give, per seed, the curve's deviation from the
  configuration's mean (in log space: the deviation of a plateau at 200 nats and of a run at 120 nats
  scale alike). A simulated trial adds one of those deviation curves, drawn with its seed, so two
  trials of the same configuration differ as two seeds did, whole curves at a time.
- Fidelity is measured, not claimed (`fidelity`): K-fold over the recorded configurations, the rank
  correlation (Spearman) of predicted and recorded values, final and at every report.
"""
from __future__ import annotations

import hashlib
import json
import math
import statistics
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .curves import Curve, CurveSet, Report

MIN_CONFIGS = 20


def _numeric(choices: list[Any]) -> bool:
    return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)


class Encoder:
    """Parameters -> a feature vector, from the space's own distributions."""

    def __init__(self, space: Any):
        from ..space.nodes import decode
        self.dists = space.distributions()
        self.decode = decode
        self.names = list(self.dists)

    def row(self, params: dict[str, Any]) -> list[float]:
        out = []
        for name in self.names:
            dist = self.dists[name]
            kind = getattr(dist, "type", "")
            if kind == "categorical":
                choices = dist.choices
                missing = (min(choices) - 1.0) if _numeric(choices) else -1.0
                if name not in params:
                    out.append(missing)
                    continue
                value = self.decode(dist, params[name])
                out.append(float(value) if _numeric(choices) else float(choices.index(value)))
                continue
            low = math.log(dist.low) if dist.log else float(dist.low)
            high = math.log(dist.high) if dist.log else float(dist.high)
            if name not in params:
                out.append(low - (high - low + 1.0))
                continue
            value = float(params[name])
            out.append(math.log(value) if dist.log else value)
        return out

    def matrix(self, params: list[dict[str, Any]]) -> np.ndarray:
        return np.asarray([self.row(p) for p in params], dtype=np.float64)


def _log_curve(curve: Curve, n: int) -> Optional[np.ndarray]:
    values = [r.value for r in curve.reports]
    if len(values) != n or any(v is None or not v > 0 for v in values):
        return None
    return np.log(np.asarray(values, dtype=np.float64))


def _diverged(curve: Curve) -> bool:
    """The run's loss went non-finite: a recorded error, or a value that is not a finite number."""
    return curve.error is not None or any(r.value is None for r in curve.reports)


@dataclass
class Prediction:
    log_values: np.ndarray   # [reports]
    seconds: np.ndarray      # [reports]
    p_diverge: float


def trial_seed(params: dict[str, Any], seed: int) -> int:
    """The noise seed of a trial: from its parameters and the search's seed, so that a real search
    replaying the same curves (replay.py) draws the same curve for the same configuration."""
    text = json.dumps(params, sort_keys=True, default=str) + f"#{seed}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class Surrogate:
    kind = "surrogate"

    def __init__(self, curves: CurveSet, space: Any, seed: int = 0, trees: int = 200):
        from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier

        self.curves, self.space, self.encoder = curves, space, Encoder(space)
        self.steps = list(curves.report_steps)
        n = len(self.steps)
        main = curves.main()
        if len(main) < MIN_CONFIGS:
            from .curves import CurvesError
            raise CurvesError(f"{curves.space_file}: {len(main)} configurations recorded; the surrogate needs at "
                              f"least {MIN_CONFIGS} (record more with --configs)")
        finished = [(c, lc) for c in main if (lc := _log_curve(c, n)) is not None]
        # A curve cut short without a non-finite value (a harvested trial ASHA stopped) says nothing of
        # divergence: only whole curves and diverged ones teach the classifier.
        judged = [c for c in main if _log_curve(c, n) is not None or _diverged(c)]
        x_all = self.encoder.matrix([c.params for c in judged])
        diverged = np.asarray([_diverged(c) for c in judged])
        self.value_model = ExtraTreesRegressor(n_estimators=trees, min_samples_leaf=2, random_state=seed, n_jobs=1)
        self.value_model.fit(self.encoder.matrix([c.params for c, _ in finished]), np.stack([lc for _, lc in finished]))
        timed = [c for c in main if len(c.reports) == n]
        self.seconds_model = ExtraTreesRegressor(n_estimators=max(50, trees // 4), min_samples_leaf=2,
                                                 random_state=seed, n_jobs=1)
        self.seconds_model.fit(self.encoder.matrix([c.params for c in timed]),
                               np.asarray([[r.seconds for r in c.reports] for c in timed]))
        self.diverge_model = None
        if diverged.any() and not diverged.all():
            self.diverge_model = RandomForestClassifier(n_estimators=max(50, trees // 4), min_samples_leaf=2,
                                                        random_state=seed, n_jobs=1)
            self.diverge_model.fit(x_all, diverged)
        # At which report the recorded divergences happened (the first non-finite value).
        self.diverge_at = [next((i for i, r in enumerate(c.reports) if r.value is None), len(c.reports))
                           for c in main if _diverged(c)] or [n - 1]
        self.noise = noise_curves(curves, n)
        # What a returned configuration is scored against (simulate.py): the predicted final values of
        # the recorded configurations, and a full trial's recorded seconds.
        finals = sorted(float(math.exp(p.log_values[-1])) for p in self.predict([c.params for c in main]))
        self.best_true, self.median_true, self.worst_true = finals[0], statistics.median(finals), finals[-1]
        self.full_seconds = statistics.median(sum(r.seconds for r in c.reports) for c in timed)

    def predict(self, params: list[dict[str, Any]]) -> list[Prediction]:
        x = self.encoder.matrix(params)
        values = forest_mean(self.value_model, x)
        seconds = forest_mean(self.seconds_model, x)
        if self.diverge_model is not None:
            proba = forest_mean(self.diverge_model, x, normalize=True)
            p = proba[:, list(self.diverge_model.classes_).index(True)]
        else:
            p = np.zeros(len(params))
        return [Prediction(values[i], np.maximum(seconds[i], 1e-3), float(p[i])) for i in range(len(params))]

    def curve(self, params: dict[str, Any], seed: int) -> list[Report]:
        """A trial's curve in a search with seed `seed`: the prediction, one recorded seed's deviation
        (drawn by the trial's parameters and `seed`), and (with the predicted probability) a divergence
        at a recorded report: a non-finite value there, none after."""
        pred = self.predict([params])[0]
        rng = np.random.default_rng(trial_seed(params, seed))
        log_values = pred.log_values + (self.noise[rng.integers(len(self.noise))] if len(self.noise) else 0.0)
        cut = len(self.steps)
        if rng.random() < pred.p_diverge:
            cut = int(self.diverge_at[rng.integers(len(self.diverge_at))])
        reports = []
        for i, step in enumerate(self.steps):
            value = float(math.exp(log_values[i])) if i < cut else None
            reports.append(Report(step, value, float(pred.seconds[i])))
            if value is None:
                break
        return reports


    def true_value(self, params: dict[str, Any], step: int) -> float:
        """The predicted value of `params` at `step`'s report, without noise: what the surrogate says
        the configuration is worth."""
        k = self.steps.index(step) if step in self.steps else len(self.steps) - 1
        return float(math.exp(self.predict([params])[0].log_values[k]))


def forest_mean(forest: Any, x: np.ndarray, normalize: bool = False) -> np.ndarray:
    """What `forest.predict(x)` (regressors) or `predict_proba(x)` (`normalize`: classifiers) returns,
    averaged over the trees directly: sklearn's own call dispatches a job per tree, which costs 15x
    more for the one configuration a simulated trial asks about (each fitted tree's `tree_.predict`
    gives its leaf values: tests/test_search_simulate.py checks the two agree)."""
    x32 = np.asarray(x, dtype=np.float32)
    leaves = []
    for tree in forest.estimators_:
        v = tree.tree_.predict(x32)        # [n, outputs, classes or 1]; [n, classes or 1] for one output
        v = v[:, None, :] if v.ndim == 2 else v
        if normalize:
            v = v / np.maximum(v.sum(axis=-1, keepdims=True), 1e-12)
        leaves.append(v)
    mean = np.mean(leaves, axis=0)
    return mean[:, 0, :] if normalize else mean[:, :, 0]


def noise_curves(curves: CurveSet, n: int) -> np.ndarray:
    """Each repeated configuration's seeds as deviations from their mean log curve: [seeds x configs, n]."""
    out = []
    for runs in curves.repeats().values():
        logs = [lc for c in runs if (lc := _log_curve(c, n)) is not None]
        if len(logs) < 2:
            continue
        mean = np.mean(logs, axis=0)
        out += [lc - mean for lc in logs]
    return np.asarray(out) if out else np.zeros((0, n))


def noise_summary(curves: CurveSet) -> dict[str, Any]:
    """How far two seeds of one configuration lie apart: per report, the median over the repeated
    configurations of the standard deviation of the metric across seeds (nats)."""
    n = len(curves.report_steps)
    per_report: list[list[float]] = [[] for _ in range(n)]
    for runs in curves.repeats().values():
        values = [[r.value for r in c.reports] for c in runs if _log_curve(c, n) is not None]
        if len(values) < 2:
            continue
        for i in range(n):
            per_report[i].append(float(np.std([v[i] for v in values], ddof=1)))
    return {"configurations": len(curves.repeats()),
            "seeds": max((len(r) for r in curves.repeats().values()), default=0),
            "std_nats_per_report": [round(float(np.median(v)), 3) if v else None for v in per_report]}


def fidelity(curves: CurveSet, space: Any, folds: int = 5, seed: int = 0, trees: int = 200) -> dict[str, Any]:
    """K-fold over the recorded configurations: the Spearman rank correlation between the surrogate's
    predicted and the recorded value, final and at every report, and of seconds per report; the
    configurations that diverged are left out of the value correlations (they have no value)."""
    from scipy.stats import spearmanr

    main = curves.main()
    n = len(curves.report_steps)
    order = np.random.default_rng(seed).permutation(len(main))
    predicted, actual, sec_pred, sec_actual = [], [], [], []
    for k in range(folds):
        test = [main[i] for i in order[k::folds]]
        train_ids = {c.id for c in test}
        train = CurveSet(**{**curves.__dict__, "curves": [c for c in curves.curves if c.id not in train_ids]})
        model = Surrogate(train, space, seed=seed, trees=trees)
        for c, pred in zip(test, model.predict([c.params for c in test])):
            lc = _log_curve(c, n)
            if lc is not None:
                predicted.append(pred.log_values)
                actual.append(lc)
            if len(c.reports) == n:
                sec_pred.append(float(np.sum(pred.seconds)))
                sec_actual.append(float(sum(r.seconds for r in c.reports)))
    predicted, actual = np.asarray(predicted), np.asarray(actual)
    per_report = [float(spearmanr(predicted[:, i], actual[:, i]).statistic) for i in range(n)]
    return {"folds": folds, "configurations": len(main), "held_out_with_values": int(len(actual)),
            "spearman_final": round(per_report[-1], 4),
            "spearman_per_report": {int(s): round(r, 4) for s, r in zip(curves.report_steps, per_report)},
            "spearman_seconds": round(float(spearmanr(sec_pred, sec_actual).statistic), 4),
            "median_abs_error_final_nats": round(float(np.median(np.abs(np.exp(predicted[:, -1]) -
                                                                       np.exp(actual[:, -1])))), 3)}
