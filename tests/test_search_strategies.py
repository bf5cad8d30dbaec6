"""The strategy registry (search/tune/strategies/): every registered strategy runs the quickstart's
search end to end on real MNIST (its budget cut to seconds), a space names its strategy or keeps the
older sampler/scheduler keys, a wrong choice is one line before Ray starts, and population-based
training demonstrably exploits: a trial goes on from another's checkpoint with mutated parameters,
which trials.json, MLflow, the printed summary and the trial's own checkpoint all show."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from search.space import SpaceError, load_space
from search.tune import strategies
from tests.helpers import QUICKSTART, ROOT, mlflow_runs, optuna_study, write_space


def quickstart_cut(strategy: str | None, n: int = 4) -> dict:
    """spaces/quickstart.yaml as shipped (its search, scheduler and sampler), with `strategy`, n trials
    of 30 steps on 500 images, and a small export."""
    space = yaml.safe_load(QUICKSTART.read_text())
    space["experiment"].update(name=(strategy or "default").replace("+", "-"), num_samples=n, time_budget_s=0)
    space["data"].update(train_limit=500, eval_limit=100)
    space["fixed"]["train"].update(max_steps=30, eval_every_steps=10, batch_size=50)
    space["points_to_evaluate"] = []
    space["export"].update(iwae_k=4, limit=20)
    space["mlflow"].update(experiment=space["experiment"]["name"], registered_model="", sample_images=4)
    if strategy is not None:
        space["strategy"] = strategy
        space["sampler"].pop("type", None)
        space["scheduler"].pop("type", None)
    return space


def test_the_registry_lists_every_strategy_and_maps_the_older_keys(tmp_path):
    assert strategies.names() == ["random", "random+asha", "random+hyperband", "tpe", "tpe+asha", "tpe+hyperband",
                                  "pbt"]
    assert strategies.DEFAULT == "random+asha"
    for sampler, scheduler, name in (("random", "none", "random"), ("random", "asha", "random+asha"),
                                     ("tpe", "none", "tpe"), ("tpe", "asha", "tpe+asha"),
                                     ("tpe", "hyperband", "tpe+hyperband")):
        space = quickstart_cut(None)
        space["sampler"]["type"], space["scheduler"]["type"] = sampler, scheduler
        assert strategies.name_for(load_space(write_space(tmp_path, "s", space))) == name
    space = quickstart_cut(None)
    del space["sampler"]["type"], space["scheduler"]["type"]
    assert strategies.name_for(load_space(write_space(tmp_path, "s", space))) == strategies.DEFAULT
    space["sampler"]["type"] = "tpe"  # one older key written: the older meaning (scheduler asha by default)
    assert strategies.name_for(load_space(write_space(tmp_path, "s", space))) == "tpe+asha"
    hyperband = quickstart_cut("hyperband")  # the name random+hyperband had before strategies were composed
    hyperband["scheduler"].update(grace_period=1, reduction_factor=2)
    s = load_space(write_space(tmp_path, "hb", hyperband))
    # Hyperband's s_max + 1 brackets for 3 reports, grace 1, eta 2: floor(log2(3)) + 1 = 2
    assert strategies.for_space(s).scheduler(s)._brackets.__len__() == 2
    assert strategies.name_for(s) == "random+hyperband"


@pytest.mark.parametrize("edit, where, says", [
    (lambda s: s.update(strategy="bayes"), "strategy", "use one of random, random+asha"),
    (lambda s: s["scheduler"].update(type="median"), "scheduler.type", "no scheduler 'median'; use one of none, asha"),
    (lambda s: s.update(strategy={"perturbation_interval": 2}), "strategy.name", "missing"),
    (lambda s: (s.update(strategy="random"), s["sampler"].update(type="tpe")), "strategy", "contradicts"),
    (lambda s: s.update(strategy={"name": "tpe", "quantile": 1}), "strategy.quantile", "takes no options"),
    (lambda s: s["search"]["train.lr"].update(mutable=True), "search.train.lr.mutable", "only the pbt strategy"),
    (lambda s: s.update(strategy={"name": "pbt", "quantile_fraction": 0.9}), "strategy.quantile_fraction",
     "less than or equal to 0.5"),
    (lambda s: s.update(strategy="pbt"), "search", "none is"),
    (lambda s: (s.update(strategy="pbt"), s["search"]["model.top_latents"].update(mutable=True)),
     "search.model.top_latents.mutable", "cannot change during a trial"),
    (lambda s: (s.update(strategy="pbt"), s["search"]["train.lr"].update(mutable=True)),
     "search.model.meta_modules.7x7.modules", "drawn by some trials only"),
])
def test_a_strategy_the_space_cannot_run_is_one_line_before_ray(tmp_path, edit, where, says):
    space = quickstart_cut(None)
    del space["sampler"]["type"], space["scheduler"]["type"]
    edit(space)
    path = write_space(tmp_path, "s", space)
    with pytest.raises(SpaceError) as e:
        strategies.for_space(load_space(path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: {where}:") and says in msg, msg


@pytest.mark.parametrize("strategy", [n for n in strategies.names() if n != "pbt"])
def test_every_strategy_runs_the_quickstart_search_end_to_end(tmp_path, monkeypatch, strategy):
    from search.run import SearchOptions, run_search

    monkeypatch.chdir(tmp_path)
    space = load_space(write_space(tmp_path, "q", quickstart_cut(strategy)))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    outcome = run_search(space, SearchOptions(storage=str(tmp_path / "results"), tracking_uri=uri))
    assert outcome.code == 0
    exp_dir = Path(outcome.folder)
    records = json.loads((exp_dir / "trials.json").read_text())["trials"]
    assert len(records) == 4 and all(r["outcome"] in ("completed", "pruned") for r in records.values())
    assert json.loads((exp_dir / "search.json").read_text())["strategy"] == strategy
    study = optuna_study(exp_dir)
    assert len(study.trials) == 4 and study.metric_names == [space.settings.experiment.metric]
    _, parents, kids = mlflow_runs(uri)
    assert len(parents) == 1 and parents[0].data.params["strategy"] == strategy and len(kids) == 4
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["strategy"] == strategy and summary["best"]["evaluation"]["nll_nats"] > 0
    if strategy in ("random", "tpe"):  # nothing stops a trial early
        assert all(r["outcome"] == "completed" for r in records.values())


PBT = """\
experiment: {name: pbt, num_samples: 4, max_concurrent: 4, resources: {cpu: 0.5, gpu: 0}, max_failures: 0}
strategy: {name: pbt, perturbation_interval: 2, quantile_fraction: 0.5, synch: true}
base: tiny
data: {dataset: mnist, train_limit: 500, eval_limit: 100}
fixed:
  train: {max_steps: 60, eval_every_steps: 10, batch_size: 50, device: cpu}
  model: {data_width: 8, top_latents: 8, meta_modules: [{scale: 14, width: 8, modules: 1, latent_channels: 2}]}
search:
  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true, mutable: true}
  train.kl_warmup_steps: {type: int, low: 0, high: 60, step: 30, mutable: true}
sampler: {seed: 3}
mlflow: {experiment: pbt, sample_images: 0, registered_model: ""}
export: {iwae_k: 4, limit: 20, top_trials: 4}
"""


def test_pbt_exploits_and_every_record_shows_it(tmp_path, monkeypatch, capsys):
    from search.run import SearchOptions, run_search

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pbt.yaml").write_text(PBT)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    outcome = run_search(load_space(tmp_path / "pbt.yaml"), SearchOptions(storage=str(tmp_path / "r"),
                                                                           tracking_uri=uri))
    assert outcome.code == 0
    exp_dir = Path(outcome.folder)
    records = json.loads((exp_dir / "trials.json").read_text())["trials"]
    exploited = {tid: r for tid, r in records.items() if r["lineage"]}
    # Synchronous PBT at reports 2 and 4 of 6 with half the population below the median: the bottom
    # two clone the top two at each decision.
    assert len(exploited) >= 2 and all(r["outcome"] == "completed" for r in records.values())
    for tid, r in exploited.items():
        for event in r["lineage"]:
            assert event["from_trial"] in records and event["from_trial"] != tid and event["step"] in (20, 40)
            lr = event["params"]["train.lr"]
            assert 1.0e-4 <= lr <= 1.0e-2 and event["params"]["train.kl_warmup_steps"] in (0, 30, 60)
        # The trial's own latest checkpoint trained on with the mutated parameters ...
        latest = max((exp_dir / c for c in r["checkpoints"]),
                     key=lambda c: json.loads((c / "meta.json").read_text())["step"])
        config = json.loads((latest / "config.json").read_text())
        assert config["train"]["lr"] == pytest.approx(r["lineage"][-1]["params"]["train.lr"])
        # ... and its history is the lineage's: the clone's reports up to the step it went on from.
        # (Which of a trial's checkpoints Ray keeps under PBT varies from run to run: the latest kept one is
        # past the last exploitation, and its history runs from step 10 up to its own step.)
        own_step = json.loads((latest / "meta.json").read_text())["step"]
        assert own_step > r["lineage"][-1]["step"] and r["last"]["step"] == 60
        steps = [json.loads(line)["step"] for line in (latest / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(10, own_step + 1, 10))
    printed = capsys.readouterr().out
    assert f"pbt: {sum(len(r['lineage']) for r in records.values())} exploitations" in printed
    assert all(f"{tid} took {r['lineage'][0]['from_trial']}'s checkpoint" in printed for tid, r in exploited.items())
    _, _, kids = mlflow_runs(uri)
    tagged = {k.data.tags["trial_id"]: k.data.tags for k in kids if "pbt.exploits" in k.data.tags}
    assert set(tagged) == set(exploited)
    assert all(tags["pbt.exploits"] == str(len(exploited[tid]["lineage"])) for tid, tags in tagged.items())
    assert "took" in next(iter(tagged.values()))["pbt.exploit.1"]
    study = optuna_study(exp_dir)  # told honestly: PBT's trials change parameters, so none is an Optuna trial
    assert study.trials == [] and "pbt" in study.user_attrs["trials_not_recorded"]
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert "records no trials" in summary["param_importances"]
    assert summary["exploitations"] == sum(len(r["lineage"]) for r in records.values())


def test_the_shipped_pbt_space_is_valid_and_mutates_only_what_a_run_can_change():
    space = load_space(ROOT / "spaces" / "quickstart-pbt.yaml")
    strategy = strategies.for_space(space)
    assert strategy.name == "pbt" and not strategy.uses_study
    assert {n for n, p in space.params().items() if p.mutable} == {"train.lr", "train.kl_warmup_steps"}


NEW_SCHEDULER = '''
"""median: Ray Tune's median stopping rule ends trials below the running median."""
from search.tune.strategies import SchedulerPart, register_scheduler


def median(space, seed=None):
    from ray.tune.schedulers import MedianStoppingRule
    experiment = space.settings.experiment
    return MedianStoppingRule(time_attr="training_iteration", metric=experiment.metric, mode=experiment.mode,
                              grace_period=1, min_samples_required=2)


register_scheduler(SchedulerPart("median", "the median stopping rule", median,
                                 describe=lambda space: "the median stopping rule after 1 report"))
'''


def test_a_new_scheduler_is_one_module_and_every_sampler_pairs_with_it(tmp_path, monkeypatch):
    """docs/layout.md's promise: a module dropped into search/tune/strategies/ (here a folder added to
    the package's path) that registers a scheduler makes a strategy of it with every sampler: in space
    files (strategy: or scheduler.type:), --help, the dry run and the simulator, with no other edit."""
    import sys

    from search.bench.curves import curves_space, load
    from search.bench.simulate import simulate
    from search.bench.surrogate import Surrogate
    folder = tmp_path / "more_strategies"
    folder.mkdir()
    (folder / "median_rule.py").write_text(NEW_SCHEDULER)
    monkeypatch.setattr(strategies, "__path__", [*strategies.__path__, str(folder)])
    monkeypatch.setattr(strategies, "SCHEDULERS", dict(strategies.SCHEDULERS))
    try:
        strategies._discover()
        assert {"random+median", "tpe+median"} <= set(strategies.names())
        assert "random+median     random draws; the median" in strategies.help_text()
        s = load_space(write_space(tmp_path, "median", quickstart_cut("random+median")))
        assert strategies.name_for(s) == "random+median"
        assert type(strategies.for_space(s).scheduler(s)).__name__ == "MedianStoppingRule"
        assert strategies.for_space(s).describe(s) == \
            "random+median: random draws; the median stopping rule after 1 report"
        pair = quickstart_cut(None)
        pair["sampler"]["type"], pair["scheduler"]["type"] = "tpe", "median"
        s = load_space(write_space(tmp_path, "pair", pair))
        import optuna
        assert strategies.name_for(s) == "tpe+median"
        assert isinstance(strategies.for_space(s).sampler(s), optuna.samplers.TPESampler)
        curves = load(ROOT / "docs" / "curves-compare.json")
        sim_space = curves_space(curves)
        run = simulate(Surrogate(curves, sim_space, trees=20), sim_space, "random+median", 0, {"steps": 6 * 160}, 2)
        # The rule stopped some trials early, and the run kept to its budget of steps.
        assert run.trials.get("pruned", 0) > 0 and any(step < 160 for _, _, step in run.decisions), run.trials
        assert 6 * 160 <= run.curve[-1][0] <= 6 * 160 + 20
    finally:
        sys.modules.pop("search.tune.strategies.median_rule", None)
