"""A Ray Tune trainable that replays learning curves instead of training (no torch): the real search
driver (search.run's strategy, searcher, ledger, MLflow, signing) runs around trials that report what
a curve model says, `time_scale` x its seconds apart. Used to check the simulator against a real
search (the same curves, the same decisions: tests/test_search_simulate.py) and to measure the
driver at cluster scale (scale.py).

A trial reports the keys matnet.train's trials report (step, the metric, final, status), so the
ledger, the searcher's outcome and MLflow read it as a real trial. With a checkpoint template (a
real matnet checkpoint folder), reports carry a copy of it whose meta.json holds the replayed
metrics, so the export at the end of a search has a best checkpoint to evaluate: every report, as a
real trial checkpoints at every evaluation (`every_report`, what scale.py measures), or the last one.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from ..store.keys import FINAL_KEY, STATUS_KEY, STEP_KEY, TRAIN_CALL_KEY
from ..store.outcome import Outcome


def replay_trainable(space: Any, model: Any, seed: int, time_scale: float = 0.0,
                     checkpoint_template: Optional[str] = None, every_report: bool = False) -> Any:
    """The Tune trainable, with the resources the space gives a trial. `model` (the surrogate, fitted
    once on the driver) goes to the trials through Ray's object store."""
    from ray import tune
    resources = space.settings.experiment.resources
    fn = tune.with_parameters(replay_trial, metric=space.settings.experiment.metric, model=model, seed=seed,
                              time_scale=time_scale, checkpoint_template=checkpoint_template,
                              every_report=every_report)
    return tune.with_resources(fn, {"cpu": resources.cpu, "gpu": resources.gpu})


def replay_trial(config: dict[str, Any], metric: str, model: Any, seed: int, time_scale: float,
                 checkpoint_template: Optional[str], every_report: bool = False) -> None:
    from ray import tune

    reports = model.curve(config, seed)
    full_steps = int(model.steps[-1])
    started = time.monotonic()
    for i, report in enumerate(reports):
        if time_scale > 0:
            time.sleep(report.seconds * time_scale)
        diverged = report.value is None
        result = {STEP_KEY: report.step, metric: math.nan if diverged else report.value,
                  FINAL_KEY: i == len(reports) - 1 and not diverged and report.step == full_steps,
                  STATUS_KEY: str(Outcome.DIVERGED if diverged else Outcome.RUNNING),
                  TRAIN_CALL_KEY: time.monotonic() - started}
        last = i == len(reports) - 1
        if checkpoint_template and (last or every_report) and not diverged:
            with tempfile.TemporaryDirectory(prefix="matnet-replay-") as tmp:
                folder = Path(tmp) / "checkpoint"
                shutil.copytree(checkpoint_template, folder)
                meta = json.loads((folder / "meta.json").read_text())
                meta.update(step=report.step, metrics={**meta.get("metrics", {}), **result})
                (folder / "meta.json").write_text(json.dumps(meta))
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(folder)))
        else:
            tune.report(result)
        if diverged:
            return
