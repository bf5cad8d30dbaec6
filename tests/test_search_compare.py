"""search.bench compare: strategies side by side on the same compute. The analysis on made-up runs
(exact figures), a short real comparison through the command, and (slow) the README's full one
(README, "Search strategies")."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from search.bench.compare import RunResult, analyse, variant
from search.tune.strategies import DEFAULT

from tests.helpers import ROOT  # noqa: E402


def run(strategy: str, seed: int, curve: list, nll: float) -> RunResult:
    return RunResult(strategy, seed, curve, curve[-1][0], {"total": 5}, nll)


def test_the_analysis_finds_the_steps_each_strategy_needed_to_reach_random_searchs_best():
    results = [
        run("random", 0, [[100, 150.0], [600, 130.0], [1000, 120.0]], 110.0),
        run("random", 1, [[100, 160.0], [1000, 124.0]], 112.0),
        run("random", 2, [[300, 128.0], [1000, 122.0]], 111.0),
        run(DEFAULT, 0, [[50, 140.0], [250, 121.0], [1000, 115.0]], 108.0),
        run(DEFAULT, 1, [[50, 135.0], [300, 119.0], [1000, 116.0]], 109.0),
        run(DEFAULT, 2, [[50, 150.0], [900, 123.0], [1000, 123.0]], 113.0),
    ]
    report = analyse(results, 1000, "min")
    assert report["random_final_best_median"] == 122.0
    tpe = report["strategies"][DEFAULT]
    assert tpe["steps_to_random_best"] == {"median": 300, "fraction_of_budget": 0.3, "seeds_reaching": 2, "seeds": 3}
    assert tpe["final_best"] == {"median": 116.0, "min": 115.0, "max": 123.0}
    assert report["strategies"]["random"]["steps_to_random_best"]["median"] == 1000
    assert report["verdict"] == {"target": 122.0, "fraction_of_budget": 0.3, "within_a_third": True,
                                 "test_nll_at_least_as_good": True}
    at_half = dict((x, v) for x, v in tpe["curve"])[500.0]
    assert at_half == {"median": 121.0, "min": 119.0, "max": 150.0}


def test_the_default_is_paired_with_random_asha_seed_by_seed():
    results = [run("random+asha", 100, [[100, 120.0]], 110.0), run("random+asha", 101, [[100, 118.0]], 111.0),
               run("random+asha", 102, [[100, 119.0]], 109.0),
               run("tpe+asha", 102, [[100, 117.0]], 112.0), run("tpe+asha", 100, [[100, 121.0]], 108.0),
               run("tpe+asha", 101, [[100, 118.0]], 110.0)]
    rows = analyse(results, 100, "min")["strategies"]
    wins = rows["tpe+asha"]["beats_random+asha"]
    # val: lost 100, tied 101, won 102 -> 1.5 of 3; test NLL: won 100 and 101, lost 102 -> 2 of 3
    assert wins["val"]["p"] == pytest.approx(0.5) and wins["test_nll"]["p"] == pytest.approx(2 / 3)
    assert wins["val"]["n"] == 3 and "beats_random+asha" not in rows["random+asha"]
    assert rows["tpe+asha"]["test_nll_iqm"]["iqm"] == pytest.approx(110.0)


def test_a_comparison_goes_on_from_its_json_and_refuses_another_budget(tmp_path, monkeypatch):
    from search.bench import compare as cmp
    from search.store.errors import RunError
    ran = []

    def fake_run(space_file, strategy, seed, budget, workdir, defaults=False):
        ran.append((strategy, seed))
        return run(strategy, seed, [[budget, 120.0 + seed]], 110.0)

    monkeypatch.setattr(cmp, "run_one", fake_run)
    out = tmp_path / "c.json"
    space = ROOT / "spaces" / "compare.yaml"
    cmp.compare(space, 1, 100, ["random", "random+asha"], first_seed=100, out=out)
    assert ran == [("random", 100), ("random+asha", 100)] and len(json.loads(out.read_text())["runs"]) == 2
    report, results = cmp.compare(space, 2, 100, ["random", "random+asha"], first_seed=100, out=out)
    assert ran[2:] == [("random", 101), ("random+asha", 101)] and len(results) == 4
    assert [r["seed"] for r in json.loads(out.read_text())["runs"]] == [100, 100, 101, 101]
    with pytest.raises(RunError, match="another space or budget"):
        cmp.compare(space, 2, 200, ["random"], first_seed=100, out=out)


def test_a_run_file_takes_the_strategy_the_seed_and_no_time_limit():
    import yaml
    text = (ROOT / "spaces" / "compare.yaml").read_text()
    raw = yaml.safe_load(variant(text, "random+asha", 3))
    assert raw["strategy"] == "random+asha" and "type" not in raw["sampler"] and raw["sampler"]["seed"] == 3
    assert "type" not in raw["scheduler"] and raw["scheduler"]["reduction_factor"] == 3
    assert raw["experiment"]["name"] == "random-asha-seed3" and raw["experiment"]["time_budget_s"] == 0
    assert raw["mlflow"] == {"enabled": False}
    # --default-settings: the strategy as a space that sets none gets it (the schema's defaults)
    raw = yaml.safe_load(variant(text, "tpe+asha[scheduler.grace_period=3]", 3, defaults=True))
    assert raw["scheduler"] == {"grace_period": 3} and raw["sampler"] == {"seed": 3}


SMALL = """\
experiment: {name: small, num_samples: 10, max_concurrent: 2, resources: {cpu: 1, gpu: 0}, max_failures: 0,
             keep_checkpoints: 1}
base: tiny
data: {dataset: mnist, train_limit: 500, eval_limit: 50}
fixed:
  train: {max_steps: 20, eval_every_steps: 10, batch_size: 50, device: cpu}
  model: {data_width: 8, top_latents: 8}
search:
  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
sampler: {type: tpe, seed: 0, n_startup_trials: 2}
export: {iwae_k: 2, limit: 10}
"""


def test_the_command_compares_real_searches_on_a_step_budget(tmp_path):
    (tmp_path / "small.yaml").write_text(SMALL)
    r = subprocess.run([sys.executable, "-m", "search.bench", "compare", str(tmp_path / "small.yaml"), "--seeds", "1",
                        "--first-seed", "100", "--budget", "50", "--strategies", "random,tpe+asha-stock",
                        "--json", str(tmp_path / "c.json"),
                        "--plot", str(tmp_path / "c.png")], capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    report = json.loads((tmp_path / "c.json").read_text())
    assert set(report["strategies"]) == {"random", "tpe+asha-stock"} and "--first-seed 100" in report["command"]
    assert {r["seed"] for r in report["runs"]} == {100}
    for run_result in report["runs"]:
        assert run_result["spent"] >= 50 and run_result["curve"][-1][0] == run_result["spent"]
        assert 0 < run_result["test_nll_nats"] < 1000 and run_result["trials"]["total"] >= 3
    assert (tmp_path / "c.png").stat().st_size > 10_000
    assert "steps to target" in r.stdout


@pytest.mark.slow
@pytest.mark.timeout(3600)  # above the suite's 15-minute limit: it runs 12 searches
def test_the_full_comparison_of_the_readme(tmp_path):
    """The README's 1,200-step comparison (about 20 minutes on 2 cores): every strategy and seed runs
    to its budget, and early stopping buys configurations: with ASHA a run tries more trials for the
    same steps than random search without it (2-3 times as many when measured)."""
    r = subprocess.run([sys.executable, "-m", "search.bench", "compare", str(ROOT / "spaces" / "compare.yaml"),
                        "--seeds", "3", "--budget", "1200", "--json", str(tmp_path / "c.json")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    report = json.loads((tmp_path / "c.json").read_text())
    rows = report["strategies"]
    assert set(rows) == {"random", "random+asha", "tpe+asha", "tpe+asha-stock"}
    assert all(run_result["spent"] >= 1200 for run_result in report["runs"]) and len(report["runs"]) == 12
    assert rows["random+asha"]["trials"]["median"] > rows["random"]["trials"]["median"]
    assert rows["random"]["steps_to_random_best"]["seeds_reaching"] >= 2  # the median is reached by definition
    assert report["verdict"] is not None and "steps to target" in r.stdout
