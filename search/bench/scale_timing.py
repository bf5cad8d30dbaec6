"""Where the driver's time goes in search.bench scale: wall seconds in the methods of the platform's
callbacks and searcher, Tune's snapshots of its state timed and counted, and the tracking writer's
CPU (its own process) reported beside the driver's."""
from __future__ import annotations

import time
from typing import Any, Callable

WRITER = "mlflow writer (own process)"  # CPU seconds of the tracking writer, not part of the driver's
SNAPSHOTS = "tune snapshots"  # Tune's experiment state, written by its controller: part of Tune's time


class Timer:
    """Wall seconds spent in the methods of a class, by component (in the driver process)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, component: str, cls: type, names: list[str]) -> None:
        for name in names:
            original = getattr(cls, name)

            def timed(*args: Any, __f: Callable = original, __c: str = component, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return __f(*args, **kw)
                finally:
                    self.seconds[__c] = self.seconds.get(__c, 0.0) + time.perf_counter() - t0
                    self.calls[__c] = self.calls.get(__c, 0) + 1
            setattr(cls, name, timed)


def snapshots(timer: Timer) -> Timer:
    """Tune's snapshots of its experiment state, timed and counted in any setup: each JSON-encodes
    every trial, and Tune forces one whenever a trial has reported `num_to_keep` checkpoints since the
    last (ray/tune/execution/experiment_state.py), so their cost grows with N x checkpoints."""
    from ray.tune.execution.tune_controller import TuneController
    timer.wrap(SNAPSHOTS, TuneController, ["save_to_dir"])
    return timer


def instrument() -> Timer:
    from ..tracking.callback import TrackingCallback
    from ..tracking.writer import TrackingWriter
    from ..tune import searcher
    from ..tune.callbacks import StateSigner, TrialLedger
    timer = Timer()
    hooks = ["on_trial_start", "on_trial_result", "on_trial_complete", "on_step_end", "on_experiment_end",
             "on_checkpoint", "on_trial_error"]
    timer.wrap("suggest/tell", searcher.OptunaSearcher, ["suggest", "on_trial_result", "on_trial_complete"])
    # on_experiment_end waits for the tracking writer (its own process): its CPU is counted instead.
    timer.wrap("mlflow", TrackingCallback,
               [h for h in hooks if hasattr(TrackingCallback, h) and h != "on_experiment_end"])
    timer.wrap("ledger", TrialLedger, [h for h in hooks if hasattr(TrialLedger, h)])
    # The signer signs as Tune saves (its get_state runs inside Tune's snapshot): counted in both.
    timer.wrap("signing", StateSigner, ["on_step_end", "on_experiment_end", "get_state"])
    timer.seconds[WRITER] = 0.0
    original_close = TrackingWriter.close

    def close(writer: TrackingWriter) -> None:  # the writer's CPU, not the driver's: reported beside it
        original_close(writer)
        timer.seconds[WRITER] += writer.cpu_seconds
        writer.cpu_seconds = 0.0
    TrackingWriter.close = close
    return timer
