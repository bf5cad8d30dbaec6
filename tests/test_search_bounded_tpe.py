"""TPE over a bounded history (search/tune/bounded_tpe.py): under its threshold it suggests exactly what
Optuna's TPE does; over it, the history TPE reads is bounded (the best and the most recent finished
trials, every running one), whatever the number of trials."""
from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from search.tune.bounded_tpe import BoundedStudy, BoundedTPESampler, History, bounded

SPACE = {"x": FloatDistribution(-5, 5), "n": IntDistribution(1, 8)}


def finished(n: int, seed: int = 0) -> list:
    """n finished trials of f(x, n) = (x - 1)^2 + n: complete ones, and every fourth pruned at a step."""
    import random
    rng = random.Random(seed)
    out = []
    for i in range(n):
        params = {"x": rng.uniform(-5, 5), "n": rng.randint(1, 8)}
        value = (params["x"] - 1) ** 2 + params["n"]
        if i % 4 == 3:
            out.append(create_trial(state=TrialState.PRUNED, params=params, distributions=SPACE,
                                    intermediate_values={rng.randint(1, 4): value + 1}))
        else:
            out.append(create_trial(value=value, params=params, distributions=SPACE))
    return out


def suggestions(sampler, trials: list, k: int = 6) -> list:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler)
    study.add_trials(trials)
    out = []
    for _ in range(k):
        trial = study.ask(SPACE)
        out.append(dict(trial.params))
        study.tell(trial, (trial.params["x"] - 1) ** 2 + trial.params["n"])
    return out


def test_under_its_threshold_it_suggests_what_optunas_tpe_suggests():
    tpe = dict(seed=3, n_startup_trials=10, multivariate=True, group=True, constant_liar=True)
    trials = finished(120)
    full = suggestions(optuna.samplers.TPESampler(**tpe), trials)
    assert suggestions(BoundedTPESampler(best=25, recent=200, **tpe), trials) == full
    # over it the suggestions may differ, but they are TPE's over the bounded history
    assert suggestions(BoundedTPESampler(best=10, recent=30, **tpe), trials) != full


def test_over_its_threshold_the_history_tpe_reads_is_bounded():
    trials = finished(2000)
    study = optuna.create_study()
    study.add_trials(trials)
    running = study.ask(SPACE)
    view = BoundedStudy(study, History(25, 200, minimize=True))
    seen = view._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    assert len(seen) <= 2 * 25 + 200 + 1 and running.number in {t.number for t in seen}
    complete = sorted((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert {t.number for t in complete[:25]} <= {t.number for t in seen}          # the best, whenever they ran
    assert set(range(2000 - 200, 2000)) <= {t.number for t in seen}               # the most recent
    assert [t.number for t in seen] == sorted(t.number for t in seen)
    assert bounded(trials[:200], 25, 200, minimize=True) == trials[:200]          # under it: all
    # A search samples through it: its TPE reads the bounded history, not the 2,000 trials.
    sampler = BoundedTPESampler(best=25, recent=200, seed=0, multivariate=True, group=True, constant_liar=True)
    read = []
    original = BoundedStudy._get_trials
    BoundedStudy._get_trials = lambda self, *a, **k: read.append(len(r := original(self, *a, **k))) or r
    try:
        study.sampler = sampler
        study.tell(running, 1.0)
        study.tell(study.ask(SPACE), 1.0)
    finally:
        BoundedStudy._get_trials = original
    assert read and max(read) <= 2 * 25 + 200 + 1


def test_the_history_kept_as_trials_finish_is_the_one_a_fresh_look_gives():
    """History ranks only what finished since its last look; what it hands TPE is what ranking every
    trial afresh gives, while trials run, finish, are pruned or fail, in any order of finishing."""
    import random
    rng = random.Random(1)
    study = optuna.create_study()
    history = History(5, 20, minimize=True)
    running = []
    for step in range(400):
        running.append(study.ask(SPACE))
        if len(running) > 6 or rng.random() < 0.5:
            trial = running.pop(rng.randrange(len(running)))
            kind = rng.random()
            if kind < 0.6:
                study.tell(trial, rng.uniform(0, 10))
            elif kind < 0.9:
                trial.report(rng.uniform(0, 10), rng.randint(1, 4))
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, state=TrialState.FAIL)
        if step % 3 == 0:  # Optuna's samplers look with a filter of states too (no running, no failed)
            history.look(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        if step % 7 == 0:
            trials = study.get_trials(deepcopy=False)
            seen = history.look(trials)
            assert [t.number for t in seen] == [t.number for t in bounded(trials, 5, 20, minimize=True)]


def test_the_optuna_benchmark_reports_what_it_measured(tmp_path):
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT
    r = subprocess.run([sys.executable, "-m", "search.bench", "optuna", "--trials", "40", "--running", "2",
                        "--history", "10", "--asks", "3", "--json", str(tmp_path / "cost.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "cost.json").read_text())
    assert {"date", "commit", "machine", "command"} <= set(report) and report["history"] == 10
    (row,) = report["rows"]
    assert row["finished"] == 40 and row["full_ms"] > 0 and row["bounded_ms"] > 0
    assert "40 finished, 2 running" in r.stdout and not r.stderr.strip(), r.stderr
