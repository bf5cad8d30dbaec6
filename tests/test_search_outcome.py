"""One trial outcome (search/store/outcome.py): the Optuna searcher, the MLflow callback and the trial
ledger (which the export and the final table read) are fed the same trial histories, the way Ray
Tune's controller feeds them, and must agree on how every trial ended. No Ray runtime is needed."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from search.store.folder import SearchFolder
from search.store.ledger import read_records
from search.tune.callbacks import TrialLedger
from search.store.outcome import Outcome, classify
from search.store.ranking import outcome_counts, trial_rows
from search.tune.searcher import OptunaSearcher
from search.store.study import StudyRef
from search.space import load_space
from search.tracking.callback import TrackingCallback
from search.tracking.runs import start_parent
from tests.helpers import write_space

METRIC = "val_elbo_nats"


def result(it: int, value: float, final: bool = False, **extra: Any) -> dict[str, Any]:
    return {"training_iteration": it, "step": 10 * it, METRIC: value, "final": final, "status": "running", **extra}


@dataclass
class History:
    """What a trial reported, and how Tune ended it."""
    results: list[dict[str, Any]]
    end: str                    # complete | error | none (still running when the search stopped)
    scheduler_stopped: bool = False  # the last result is the one the scheduler stopped it on
    expected: Outcome = Outcome.RUNNING


HISTORIES = {
    "full": History([result(i, 200.0 - i, final=i == 4) for i in range(1, 5)], "complete", expected=Outcome.COMPLETED),
    "full-stopped-at-max-t": History([result(i, 210.0 - i, final=i == 4) for i in range(1, 5)], "complete",
                                     scheduler_stopped=True, expected=Outcome.COMPLETED),
    "asha": History([result(1, 230.0), result(2, 225.0)], "complete", scheduler_stopped=True, expected=Outcome.PRUNED),
    "diverged": History([result(1, 300.0), {**result(2, math.nan), "status": "diverged", "error": "training diverged"}],
                        "complete", expected=Outcome.DIVERGED),
    "crashed": History([result(1, 250.0)], "error", expected=Outcome.ERROR),
    # Its last result is its last evaluation but holds no finite value: nothing ranks it as a finished
    # trial, so every consumer must call it pruned (Optuna cannot be told COMPLETE without a value).
    "final-without-value": History([result(1, 260.0), result(2, math.inf, final=True)], "complete",
                                   expected=Outcome.PRUNED),
    "cut-off": History([result(1, 240.0)], "none", expected=Outcome.RUNNING),
}


@dataclass
class FakeTrial:
    """The attributes of a Tune Trial that the callbacks read."""
    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)
    checkpoint: Any = None
    error_file: str | None = None
    num_failures: int = 0


OPTUNA_OUTCOME = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned", TrialState.RUNNING: "running"}


def test_the_searcher_the_mlflow_runs_and_the_ledger_agree_on_every_trial(tmp_path: Path):
    space = load_space(write_space(tmp_path, "agree", n=6, steps=40, mlflow={"sample_images": 0}))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_parent(uri, "agree", "agree", params={}, tags={})
    folder = SearchFolder(str(tmp_path / "search"))
    study = StudyRef(str(tmp_path / "optuna.journal"), "agree")
    study.create("min")
    from search.tune import strategies
    searcher = OptunaSearcher(space.suggest, METRIC, "min", study=study,
                              sampler=strategies.get("tpe+asha").sampler(space))
    ledger = TrialLedger(folder, METRIC, "min", min_interval_s=0.0)
    ledger.setup()
    mlflow_callback = TrackingCallback([("MLflow", "search.tracking.trial_runs:TrialRuns",
                                         {"tracking_uri": uri, "parent_run_id": parent, "sample_images": 0})],
                                       space, "agree", ledger)
    callbacks = [ledger, mlflow_callback]

    for trial_id, history in HISTORIES.items():
        trial = FakeTrial(trial_id, searcher.suggest(trial_id))
        if history.end == "error":
            (tmp_path / f"{trial_id}.txt").write_text("Traceback ...\nRuntimeError: worker died\n")
            trial.error_file = str(tmp_path / f"{trial_id}.txt")
        for cb in callbacks:
            cb.on_trial_start(0, [], trial)
        for i, res in enumerate(history.results):
            trial.last_result = res
            stopping = history.scheduler_stopped and i == len(history.results) - 1
            if not stopping:  # Tune does not pass the result it stops a trial on to the searcher
                searcher.on_trial_result(trial_id, res)
            for cb in callbacks:
                cb.on_trial_result(0, [], trial, res)
        if history.end == "complete":
            searcher.on_trial_complete(trial_id, result=trial.last_result)
            for cb in callbacks:
                cb.on_trial_complete(0, [], trial)
        elif history.end == "error":
            searcher.on_trial_complete(trial_id, error=True)
            for cb in callbacks:
                cb.on_trial_error(0, [], trial)
    ledger.on_experiment_end([])
    mlflow_callback.on_experiment_end([])  # its thread has finished every ended trial's run

    by_optuna = {}
    for t in searcher.study.trials:
        trial_id = next(tid for tid, number in searcher.trials.items() if number == t.number)
        by_optuna[trial_id] = t.user_attrs.get("status", OPTUNA_OUTCOME.get(t.state))
        if t.state == TrialState.FAIL:
            assert t.user_attrs["status"] in ("diverged", "error")
    from mlflow.tracking import MlflowClient
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_run(parent).info.experiment_id],
                                         filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    by_mlflow = {r.data.tags["trial_id"]: r.data.tags["status"] for r in runs}
    records = read_records(folder)
    by_ledger = {tid: r.outcome for tid, r in records.items()}
    by_table = {row["trial_id"]: row["status"] for row in trial_rows(records, METRIC, "min")}

    expected = {tid: str(h.expected) for tid, h in HISTORIES.items()}
    assert by_optuna == by_mlflow == by_ledger == by_table == expected
    assert outcome_counts(records) == {"completed": 2, "diverged": 1, "error": 1, "pruned": 2, "running": 1, "total": 7}
    # what each consumer derives from the outcome
    states = {tid: t.state for tid, t in zip(searcher.trials, searcher.study.trials)}
    assert states["asha"] == TrialState.PRUNED and states["full-stopped-at-max-t"] == TrialState.COMPLETE
    mlflow_status = {r.data.tags["trial_id"]: r.info.status for r in runs}
    assert mlflow_status["crashed"] == mlflow_status["diverged"] == "FAILED" and mlflow_status["asha"] == "FINISHED"
    assert mlflow_status["cut-off"] == "RUNNING"
    assert records["asha"].best_value == 225.0 and records["crashed"].error == "RuntimeError: worker died"


@pytest.mark.parametrize("last, errored, ended, outcome", [
    ({"final": True, "status": "running", METRIC: 123.0}, False, True, Outcome.COMPLETED),
    ({"final": False, "status": "running"}, False, True, Outcome.PRUNED),
    (None, False, True, Outcome.PRUNED),                      # ended before its first report
    ({"final": False, "status": "diverged"}, False, True, Outcome.DIVERGED),
    ({"final": False, "status": "diverged"}, False, False, Outcome.DIVERGED),
    ({"final": True}, True, True, Outcome.ERROR),              # a crash wins over everything
    ({"final": True, "status": "running", METRIC: 123.0}, False, False, Outcome.RUNNING),
    ({"final": True, "status": "running", METRIC: math.nan}, False, True, Outcome.PRUNED),  # nothing to rank
    ({"final": True, "status": "running", METRIC: math.inf}, False, True, Outcome.PRUNED),
    ({"final": True, "status": "running"}, False, True, Outcome.PRUNED),                    # no value at all
])
def test_classify(last, errored, ended, outcome):
    assert classify(last, METRIC, errored=errored, ended=ended) is outcome
    assert str(outcome) == outcome.value  # how tags, tables and JSON spell it
