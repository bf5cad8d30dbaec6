"""The simulated-time strategy benchmark (search/bench/: curves, table, surrogate, simulate, replay):
recorded curves round-trip and continue, a finished search's curves are harvested, table replay never
reports a value no real run of its configuration reported, the surrogate predicts held-out
configurations it never saw (its fidelity is a measured figure, held here to the target), the
simulator runs the platform's own strategy objects deterministically within its budget, and a real
search on Ray whose trials replay the same curves makes exactly the simulator's decisions."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from search.bench.curves import Curve, CurvesError, CurveSet, Report, load, record, save
from search.bench.surrogate import Surrogate, fidelity, forest_mean, noise_summary
from search.bench.table import TableModel
from search.space import load_space
from tests.helpers import ROOT, write_space

CURVES = ROOT / "docs" / "curves-compare.json"
TREES = 60  # fewer trees than the benchmark's 200: the tests' surrogate fits in a second


@pytest.fixture(scope="module")
def shipped():
    from search.bench.curves import curves_space
    curves = load(CURVES)
    space = curves_space(curves)
    return curves, space, Surrogate(curves, space, trees=TREES)


@pytest.fixture(scope="module")
def table(shipped):
    curves, space, _ = shipped
    return TableModel(curves, space)


def test_the_shipped_curves_are_what_the_issue_asks_for(shipped):
    curves, space, _ = shipped
    assert curves.space_file == "spaces/compare.yaml" and curves.space_text == (ROOT / "spaces/compare.yaml").read_text()
    assert len(curves.main()) >= 300
    repeated = {i: runs for i, runs in curves.repeats().items() if len(runs) >= 3}
    assert len(repeated) >= 150 and all(len({c.seed for c in runs}) == len(runs) for runs in repeated.values())
    assert sum(len(runs) >= 5 for runs in repeated.values()) >= 10
    assert curves.report_steps == [20, 40, 60, 80, 100, 120, 140, 160] and curves.cost["seconds"] > 0
    full = [c for c in curves.main() if c.complete]
    assert len(full) > 0.9 * len(curves.main()) and all(len(c.reports) == 8 for c in full)
    # Two seeds of one configuration differ: training noise is measured, not zero.
    noise = noise_summary(curves)["std_nats_per_report"]
    assert all(s is not None and s > 0 for s in noise)


def test_the_surrogate_predicts_configurations_it_never_saw(shipped):
    curves, space, model = shipped
    x = model.encoder.matrix([c.params for c in curves.main()[:40]])
    assert np.allclose(forest_mean(model.value_model, x), model.value_model.predict(x))
    assert np.allclose(forest_mean(model.diverge_model, x, normalize=True), model.diverge_model.predict_proba(x))
    report = fidelity(curves, space, folds=5, trees=TREES)
    assert report["spearman_final"] >= 0.8, report  # the issue's target, on held-out configurations
    assert all(r > 0.6 for r in report["spearman_per_report"].values()) and report["spearman_seconds"] > 0.8
    # A curve is the prediction plus one recorded seed's deviation: the same seed, the same curve.
    params = curves.main()[5].params
    a, b, c = model.curve(params, 1), model.curve(params, 1), model.curve(params, 2)
    assert [r.value for r in a] == [r.value for r in b] != [r.value for r in c]
    assert [r.step for r in a] == curves.report_steps[:len(a)]


def test_table_replay_reports_only_what_was_really_trained(shipped, table):
    """A table-mode trial replays one recorded run of the nearest recorded configuration: it can never
    report a value better than that configuration's recorded ones, and one search gives every trial
    of that configuration the same recorded seed (one train.seed per search, as a real search)."""
    curves, space, _ = shipped
    assert len(table.ids) >= 150 and all(len(table.runs[i]) >= 3 for i in table.ids)
    drawn = space.sample(120, seed=7)
    for params in drawn:
        runs = table.runs[table.recorded_id(params)]
        for seed in (0, 1, 2, 3):
            curve = table.curve(params, seed)
            assert any([(r.step, r.value) for r in curve] == [(r.step, r.value) for r in run.reports] for run in runs)
            assert [r.seconds for r in curve] == [r.seconds for r in runs[0].reports][:len(curve)]
            for k, r in enumerate(curve):
                recorded = [run.reports[k].value for run in runs if k < len(run.reports) and run.reports[k].value]
                assert r.value is None or r.value >= min(recorded)
    # Every parameter on [0, 1] and one not drawn at -1: a one-block configuration's neighbour has one block.
    one = next(p for p in drawn if p["model.meta_modules.count"] == 1)
    assert table.runs[table.recorded_id(one)][0].params["model.meta_modules.count"] == 1
    # Its true value is the mean over the recorded seeds.
    cid = table.recorded_id(one)
    finals = [run.reports[-1].value for run in table.runs[cid] if run.complete]
    if len(finals) == len(table.runs[cid]):
        assert table.true_value(one, 160) == pytest.approx(sum(finals) / len(finals))
    # Two configurations that map to one recorded configuration replay the same run in one search.
    twin = {**table.runs[cid][0].params, "train.lr": table.runs[cid][0].params["train.lr"] * 1.0001}
    assert table.recorded_id(twin) == cid and table.curve(twin, 5) == table.curve(one, 5)
    assert table.best_true <= table.median_true <= table.worst_true


def test_a_table_mode_search_is_scored_on_what_it_returns(shipped, table):
    from search.bench.simulate import simulate
    curves, space, _ = shipped
    floor = min(r.value for c in curves.curves for r in c.reports if r.value is not None)
    run = simulate(table, space, "tpe+asha", 3, {"seconds": 20 * table.full_seconds}, 4)
    assert run.curve[-1][1] >= 20 * table.full_seconds and run.returned is not None
    for steps, seconds, best, true in run.curve:
        assert best >= floor and true >= table.best_true  # never better than what was really trained
    params = json.loads(run.returned)  # the returned trial's true value: its recorded configuration's mean
    assert run.curve[-1][3] in {table.true_value(params, s) for s in curves.report_steps}


def test_a_simulated_search_is_deterministic_and_keeps_to_its_budget(shipped):
    from search.bench.simulate import simulate
    curves, space, model = shipped
    budget = 5 * 160
    runs = {name: simulate(model, space, name, 1, {"steps": budget}, 4)
            for name in ("random", "random+asha", "hyperband")}
    again = simulate(model, space, "random+asha", 1, {"steps": budget}, 4)
    assert again.curve == runs["random+asha"].curve and again.decisions == runs["random+asha"].decisions
    for run in runs.values():
        spent = [p[0] for p in run.curve]
        seconds = [p[1] for p in run.curve]
        best = [p[2] for p in run.curve]
        assert spent == sorted(spent) and seconds == sorted(seconds) and best == sorted(best, reverse=True)
        assert budget <= spent[-1] < budget + 160
    assert runs["random"].trials.get("pruned", 0) == 0
    assert runs["random+asha"].trials["pruned"] > 0 and runs["random+asha"].trials["total"] > runs["random"].trials["total"]
    # The same random draws in the same order (trial n draws the same configuration): early stopping
    # sees more of them.
    drawn = {name: {tid: params for tid, params, _ in run.decisions} for name, run in runs.items()}
    common = set(drawn["random"]) & set(drawn["random+asha"])
    assert common and all(drawn["random"][t] == drawn["random+asha"][t] for t in common)


@pytest.mark.parametrize("strategy,kind", [("tpe+asha", "surrogate"), ("hyperband", "surrogate"),
                                           ("tpe+asha", "table")])
def test_a_real_search_replaying_the_curves_makes_the_simulators_decisions(tmp_path, monkeypatch, request, shipped,
                                                                          strategy, kind):
    """One worker, the same seed: Ray Tune with the platform's driver and the simulator suggest the same
    configurations in the same order and stop each at the same step."""
    import optuna

    from search.bench.budget_stop import StepBudget
    from search.bench.replay import replay_trainable
    from search.bench.simulate import simulate
    from search.run import SearchOptions, run_search
    from search.tune.harness import Harness
    from tests.helpers import optuna_study

    monkeypatch.chdir(tmp_path)
    curves, space, model = shipped
    raw = yaml.safe_load(space.raw_text)
    raw["experiment"].update(name="parity", num_samples=1000, max_concurrent=1)
    raw.update(strategy=strategy, mlflow={"enabled": False})
    raw["sampler"] = {"seed": 4, "n_startup_trials": raw["sampler"]["n_startup_trials"]}
    raw["scheduler"].pop("type", None)
    parity = load_space(write_space(tmp_path, "parity", raw))
    budget = 8 * 160
    model = request.getfixturevalue("table") if kind == "table" else model
    sim = simulate(model, parity, strategy, 4, {"steps": budget}, 1)
    outcome = run_search(parity, SearchOptions(storage=str(tmp_path / "r"), export=False),
                         Harness(trainable=replay_trainable(parity, model, 4),
                                 stop=StepBudget(budget, "val_elbo_nats", "min", tmp_path / "budget.json")))
    assert outcome.code == 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    order = {t.user_attrs.get("ray_trial_id"): t.number for t in optuna_study(Path(outcome.folder)).trials}
    records = json.loads((Path(outcome.folder) / "trials.json").read_text())["trials"]
    real = [(json.dumps(r["params"], sort_keys=True), r["last"]["step"])
            for tid, r in sorted(records.items(), key=lambda item: order[item[0]])]
    assert all(t.state.is_finished() for t in optuna_study(Path(outcome.folder)).trials)  # the budget's cut too
    simulated = [(params, step) for _, params, step in sim.decisions]
    assert len(simulated) >= 6 and real[:len(simulated)] == simulated
    assert any(step < 160 for _, step in simulated) and any(step == 160 for _, step in simulated)


def test_recording_continues_where_it_stopped_and_refuses_another_space(tmp_path):
    text = (ROOT / "spaces" / "compare.yaml").read_text().replace("max_steps: 160, eval_every_steps: 20",
                                                                  "max_steps: 6, eval_every_steps: 3")
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(text.replace("train_limit: 2000, eval_limit: 300", "train_limit: 300, eval_limit: 50"))
    out = tmp_path / "c.json"
    first = record(space_file, 2, 1, 2, out, progress=False)
    assert [(c.id, c.seed) for c in first.curves] == [(first.curves[0].id, 0), (first.curves[1].id, 0),
                                                     (first.curves[0].id, 1)]
    assert all([r.step for r in c.reports] == [3, 6] and all(r.seconds > 0 for r in c.reports) for c in first.curves)
    values = [r.value for c in first.curves for r in c.reports]  # a non-finite value is kept as None
    assert any(v is not None for v in values) and all(v is None or v > 0 for v in values)
    more = record(space_file, 3, 1, 2, out, progress=False)  # one more configuration: only it is trained
    assert more.curves[:3] == load(out).curves[:3] == first.curves and len(more.curves) == 4
    space_file.write_text(space_file.read_text().replace("eval_limit: 50", "eval_limit: 60"))
    with pytest.raises(CurvesError, match="another version"):
        record(space_file, 3, 1, 2, out, progress=False)


def test_a_finished_search_is_harvested_from_its_own_files(tmp_path, monkeypatch):
    from search.bench.curves import harvest
    from search.run import SearchOptions, run_search
    monkeypatch.chdir(tmp_path)
    space = load_space(write_space(tmp_path, "h", n=3, steps=20, every=10, strategy="random",
                                   mlflow={"enabled": False}))
    outcome = run_search(space, SearchOptions(storage=str(tmp_path / "r"), export=False))
    curves = harvest(outcome.folder)
    assert len(curves.curves) == 3 and curves.report_steps == [10, 20] and curves.source.startswith("harvested")
    assert all(c.complete and [r.step for r in c.reports] == [10, 20] and r.value > 0 for c in curves.curves
               for r in c.reports)
    save(curves, tmp_path / "h.json")
    assert load(tmp_path / "h.json") == curves


def test_simulate_writes_its_report_and_refuses_what_it_cannot_simulate(tmp_path):
    r = subprocess.run([sys.executable, "-m", "search.bench", "simulate", str(CURVES), "--strategies",
                        "random,random+asha,tpe+asha[scheduler.grace_period=2]", "--seeds", "3", "--first-seed", "100",
                        "--budgets", "3,6", "--jobs", "1", "--json", str(tmp_path / "s.json"),
                        "--plot", str(tmp_path / "s.png")], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["model"] == "table" and report["seeds"] == [100, 101, 102] and report["unit"] == "seconds"
    assert set(report["budgets"]) == {"3", "6"} and (tmp_path / "s.png").stat().st_size > 10000
    row = report["budgets"]["6"]["strategies"]["tpe+asha[scheduler.grace_period=2]"]
    assert row["final_best"]["n"] == 3 and row["final_best"]["iqm_ci"][0] <= row["final_best"]["iqm"]
    # What the user gets: the returned configuration's true value (never better than the best in the
    # table), its normalized regret, and the share of paired seeds it beat random+asha on.
    ref = report["reference"]
    assert row["returned_true"]["iqm"] >= ref["best_true"] and row["normalized_regret"]["iqm"] >= 0
    assert 0 <= row["beats_random+asha"]["p"] <= 1 and row["beats_random+asha"]["n"] == 3
    assert report["budgets"]["6"]["budget"] == pytest.approx(6 * report["full_trial"]["seconds"])
    assert "budget 6 full trials" in r.stdout and "--first-seed 100" in report["command"]
    for args, says in ((["--strategies", "pbt"], "cannot be simulated"), (["--budgets", "ten"], "--budgets"),
                       (["--strategies", "random[sampler.seed=x]"], "sampler.seed")):
        r = subprocess.run([sys.executable, "-m", "search.bench", "simulate", str(CURVES), *args],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and says in lines[0], r.stderr


def test_a_curves_file_that_is_not_one_is_one_line(tmp_path):
    (tmp_path / "bad.json").write_text("[1, 2]")
    for path, says in ((tmp_path / "bad.json", "not a curves file"), (tmp_path / "none.json", "no such file")):
        r = subprocess.run([sys.executable, "-m", "search.bench", "simulate", str(path)], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1, r.stderr
    small = CurveSet("s.yaml", "x", "m", "min", 1, [1], "recorded",
                     [Curve(i, {}, 0, [Report(1, 1.0, 1.0)]) for i in range(3)])
    with pytest.raises(CurvesError, match="at least 20"):
        Surrogate(small, load_space(ROOT / "spaces" / "compare.yaml"))
