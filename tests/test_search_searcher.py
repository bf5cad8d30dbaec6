"""OptunaSearcher: a trial the scheduler stops reaches Optuna as PRUNED at the step it reached.

Driven the way Ray Tune's controller drives it (no Ray runtime needed): `on_trial_result` for every
result the scheduler let through, then `on_trial_complete` with the last result. As the trainable
does, a trial's last evaluation of its whole budget says so (`final: true`, matnet.train).
"""
from __future__ import annotations

import math

from optuna.trial import TrialState

from search.tune.searcher import OptunaSearcher
from search.store.study import StudyRef


def _space(trial):
    trial.suggest_float("train.lr", 1e-4, 1e-2, log=True)


MAX_T = 4  # evaluations of a trial's whole budget


def _searcher(tmp_path, create: bool = True) -> OptunaSearcher:
    ref = StudyRef(str(tmp_path / "optuna.journal"), "s")
    if create:
        ref.create("min")
    return OptunaSearcher(space=_space, metric="val_elbo_nats", mode="min", study=ref)


def _result(it: int, value: float, **extra) -> dict:
    return {"training_iteration": it, "step": 10 * it, "val_elbo_nats": value, "final": it == MAX_T, **extra}


def _by_id(s: OptunaSearcher) -> dict:
    return {t.user_attrs["ray_trial_id"]: t for t in s.study.trials if "ray_trial_id" in t.user_attrs}


def test_scheduler_stop_is_pruned_at_the_step_reached_and_full_runs_complete(tmp_path):
    s = _searcher(tmp_path)
    for tid in "abcdef":
        assert "train.lr" in s.suggest(tid)

    # a: ASHA stops it on its 2nd result (that result never reaches on_trial_result).
    s.on_trial_result("a", _result(1, 200.0))
    s.on_trial_complete("a", _result(2, 190.0, done=True))
    # b: runs all 4 reports, then its function returns (the last result was seen).
    for it in range(1, 5):
        s.on_trial_result("b", _result(it, 180.0 - it))
    s.on_trial_complete("b", _result(4, 176.0, done=True))
    # c: ASHA stops it exactly at max_t: that is a full trial.
    for it in range(1, 4):
        s.on_trial_result("c", _result(it, 185.0))
    s.on_trial_complete("c", _result(4, 184.0, done=True))
    # d: its loss went non-finite.
    s.on_trial_result("d", _result(1, 300.0))
    s.on_trial_complete("d", _result(2, math.inf, status="diverged"))
    # e: it crashed for good.
    s.on_trial_result("e", _result(1, 250.0))
    s.on_trial_complete("e", error=True)
    # f: stopped at its very first result.
    s.on_trial_complete("f", _result(1, 400.0, done=True))

    t = _by_id(s)
    assert t["a"].state == TrialState.PRUNED
    assert t["a"].last_step == 20 and t["a"].intermediate_values == {10: 200.0, 20: 190.0}
    assert t["a"].value == 190.0 and t["a"].user_attrs["status"] == "pruned"
    assert t["b"].state == TrialState.COMPLETE and t["b"].value == 176.0 and t["b"].last_step == 40
    assert t["c"].state == TrialState.COMPLETE and t["c"].value == 184.0 and t["c"].last_step == 40
    assert t["d"].state == TrialState.FAIL and t["d"].user_attrs["status"] == "diverged"
    assert t["e"].state == TrialState.FAIL and t["e"].user_attrs["status"] == "error"
    assert t["f"].state == TrialState.PRUNED and t["f"].last_step == 10


def test_ray_stock_optuna_search_would_call_the_stopped_trial_complete():
    """The behaviour this subclass corrects (Ray 2.60's OptunaSearch), kept as a guard: if Ray
    fixes it upstream this test fails and the subclass can be simplified."""
    from ray.tune.search.optuna import OptunaSearch

    def space(trial):
        trial.suggest_float("x", 0, 1)
    s = OptunaSearch(space=space, metric="m", mode="min")
    s.suggest("a")
    s.on_trial_result("a", {"training_iteration": 1, "m": 2.0})
    s.on_trial_complete("a", {"training_iteration": 2, "m": 1.5, "done": True})
    assert s._ot_study.trials[0].state == TrialState.COMPLETE


def test_state_survives_save_and_restore(tmp_path):
    s = _searcher(tmp_path)
    s.suggest("a")
    s.on_trial_result("a", _result(1, 200.0))
    s.save(str(tmp_path / "searcher.pkl"))
    r = _searcher(tmp_path, create=False)
    r.restore(str(tmp_path / "searcher.pkl"))
    r.on_trial_complete("a", _result(2, 190.0, done=True))
    assert _by_id(r)["a"].state == TrialState.PRUNED


def test_the_study_is_the_record_and_the_searcher_state_only_maps_trials(tmp_path):
    """Everything told reaches the study's storage at once (optuna.load_study sees it while the
    searcher runs); Tune's saved searcher state holds the trial mapping and the sampler only; a
    restored searcher reads the rest back from the study and does not report a step twice; a trial
    asked after the state was saved (Tune will not run it) is ended as FAIL."""
    import pickle

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    s = _searcher(tmp_path)
    s.suggest("a")
    s.suggest("b")
    s.on_trial_result("a", _result(1, 200.0))
    for it in range(1, 5):
        s.on_trial_result("b", _result(it, 180.0 - it))
    s.on_trial_complete("b", _result(4, 176.0, done=True))
    s.save(str(tmp_path / "searcher.pkl"))
    s.suggest("c")  # after the state Tune saved

    seen = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal"))))
    states = {t.number: t.state for t in seen.trials}
    assert states == {0: TrialState.RUNNING, 1: TrialState.COMPLETE, 2: TrialState.RUNNING}
    assert seen.trials[0].intermediate_values == {10: 200.0} and seen.trials[1].value == 176.0
    state = pickle.loads((tmp_path / "searcher.pkl").read_bytes())
    assert set(state) == {"trials", "sampler"} and state["trials"] == {"a": 0, "b": 1}
    assert pickle.loads(pickle.dumps(s)).__dict__["_study"] is None  # Tune's tuner.pkl holds no connection

    r = pickle.loads(pickle.dumps(s))  # as Tune unpickles tuner.pkl, then restores its state
    r.restore(str(tmp_path / "searcher.pkl"))
    r.on_trial_result("a", _result(1, 200.0))  # a result Tune replays after the restart: not told twice
    r.on_trial_result("a", _result(2, 195.0))
    r.on_trial_complete("b", _result(4, 176.0, done=True))  # already complete: left alone
    r.on_trial_complete("a", _result(3, 190.0, done=True))
    trials = {t.number: t for t in seen.trials}
    assert trials[0].state == TrialState.PRUNED and trials[0].intermediate_values == {10: 200.0, 20: 195.0, 30: 190.0}
    assert trials[1].state == TrialState.COMPLETE and trials[1].value == 176.0
    assert trials[2].state == TrialState.FAIL and trials[2].user_attrs["status"] == "error"
