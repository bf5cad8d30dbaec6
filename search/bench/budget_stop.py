"""Stop a search when its trials together have trained a given number of steps, and keep the curve
of the best value reached against the steps spent (what `search.bench compare` plots).

Compute is counted in training steps, not seconds: a step costs the same in every strategy, and the
count does not change when another job shares the machine, as seconds would on two shared cores.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray.tune.stopper import Stopper

from matnet.outputs import write_text

from ..store.keys import STEP_KEY, better, is_finite


class StepBudget(Stopper):
    def __init__(self, budget_steps: int, metric: str, mode: str, record: str | Path):
        self.budget_steps = budget_steps
        self.metric = metric
        self.mode = mode
        self.record = str(record)
        self.steps: dict[str, int] = {}        # trial id -> steps it trained so far
        self.spent = 0                          # their sum
        self.best: float | None = None
        self.curve: list[list[float]] = []     # [steps spent, best value so far] after every result
        self._written_at = 0.0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        step = max(self.steps.get(trial_id, 0), int(result.get(STEP_KEY, 0)))
        self.spent += step - self.steps.get(trial_id, 0)
        self.steps[trial_id] = step
        value = result.get(self.metric)
        if is_finite(value) and better(float(value), self.best, self.mode):
            self.best = float(value)
        if self.best is not None:
            self.curve.append([self.spent, self.best])
        if self.stop_all() or time.monotonic() - self._written_at > 5.0:
            self.write()
        return False  # a trial is never stopped for the budget: stop_all ends the search

    def write(self) -> None:
        """The record so far (every few seconds, and when the budget is reached)."""
        write_text(self.record, json.dumps({"budget_steps": self.budget_steps, "spent": self.spent,
                                            "best": self.best, "curve": self.curve}) + "\n")
        self._written_at = time.monotonic()

    def stop_all(self) -> bool:
        return self.spent >= self.budget_steps
