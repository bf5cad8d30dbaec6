"""The Ray Tune callback that logs every trial to the search's tracking back-ends (MLflow's child
runs, TensorBoard's event files, or both).

All logging happens on the driver's side: trials (possibly on other nodes) never talk to a tracking
server, and interruption and resume are handled in one place. Tune's loop does not wait for tracking:
this callback decides what to log (the trial's parameters, each result's numbers at matnet's training
step, the outcome, the figures' checkpoint), as plain data, and hands it to the tracking writer, a
process of its own (writer.py) in which each back-end's sink makes its requests (sinks.py: trial_runs.py,
trial_events.py; nothing logged twice, results batched).

- A finished trial gets its outcome (search/store/outcome.py) as the `status` tag, its best value (from
  the trial ledger), its figures (samples or imputations, per-layer KL) and its training history
  (metrics.jsonl, Figure 4 as kl_per_layer.png).
- Under population-based training, each exploitation is a tag `pbt.exploit.N` (whose checkpoint, at
  which step, the new parameters) and `pbt.exploits` counts them.
"""
from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from ..store.keys import ERROR_KEY, ITERATION_KEY, LINEAGE_KEY, NODE_KEY, STEP_KEY
from ..store.ledger import error_line
from ..store.outcome import Outcome, classify
from .metrics import STATUS_TAG, numeric_metrics
from .writer import TrackingWriter


class TrackingCallback(Callback):
    def __init__(self, sinks: list[tuple[str, str, dict[str, Any]]], space: Any, search_name: str, ledger: Any):
        """sinks: what the writer opens for each enabled back-end (label, "module:Class", arguments)."""
        self.sinks = sinks
        self.space = space
        self.search_name = search_name
        self.ledger = ledger  # the trial ledger, a callback before this one: the trials' best values
        self.metric = space.settings.experiment.metric
        self._writer: TrackingWriter | None = None

    # Tune pickles callbacks with the experiment (tuner.pkl): not the writer process.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_writer": None}

    @property
    def writer(self) -> TrackingWriter:
        if self._writer is None:
            self._writer = TrackingWriter(self.sinks, self.space, self.search_name)
        return self._writer

    # ---- Tune hooks ------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.writer.send("start", trial.trial_id, dict(trial.config))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.writer.send("recover", trial.trial_id, dict(trial.config), trial.num_failures)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        exploited = result.get(LINEAGE_KEY)
        if isinstance(exploited, dict):
            self.writer.send("exploit", trial.trial_id, dict(trial.config), exploit_text(exploited))
        it = int(result.get(ITERATION_KEY, 0))
        step = int(result.get(STEP_KEY, it))
        self.writer.send("result", trial.trial_id, dict(trial.config), it, step, int(time.time() * 1000),
                         numeric_metrics(result, first=self.metric))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, classify(trial.last_result, self.metric))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, classify(trial.last_result, self.metric, errored=True))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Every trial's results, figures and end are written before the search closes its runs."""
        if self._writer is not None:
            self._writer.close()

    def _finish(self, trial: Any, outcome: Outcome) -> None:
        """The trial's last metrics and tags, and the checkpoint its figures are drawn from (by the
        writer: a figure means loading the checkpoint and drawing samples)."""
        last = dict(trial.last_result or {})
        tags = {STATUS_TAG: str(outcome)}
        if last.get(NODE_KEY):
            tags[NODE_KEY] = str(last[NODE_KEY])
        if "compiled" in last:  # whether the trial's step ran compiled (train.compile), as it reported
            tags["compiled"] = str(bool(last["compiled"])).lower()
        if outcome is Outcome.DIVERGED and last.get(ERROR_KEY):
            tags[ERROR_KEY] = str(last[ERROR_KEY])[:5000]
        if outcome is Outcome.ERROR:
            tags[ERROR_KEY] = error_line(trial.error_file)
        step = int(last.get(STEP_KEY, last.get(ITERATION_KEY, 0)) or 0)
        finals = {"iterations": float(last.get(ITERATION_KEY, 0) or 0)}
        record = self.ledger.records.get(trial.trial_id)
        if record is not None and record.best_value is not None:
            finals[f"best_{self.metric}"] = record.best_value
        checkpoint = trial.checkpoint if outcome is not Outcome.ERROR else None
        title = f"{trial.trial_id} ({outcome}), step {last.get(STEP_KEY, '?')}"
        self.writer.send("finish", trial.trial_id, dict(trial.config), str(outcome), step, int(time.time() * 1000),
                         finals, tags, checkpoint, last, title)


def exploit_text(exploited: dict[str, Any]) -> str:
    """A PBT exploitation in one line: at which step, whose checkpoint, the new parameters."""
    return (f"step {exploited.get('step')}: took {exploited.get('from_trial')}'s checkpoint; "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in sorted((exploited.get("params") or {}).items())))
