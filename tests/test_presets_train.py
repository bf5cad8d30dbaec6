"""Every shipped preset trains under every budget form (matnet/preset_check.py): a short run bounded
by steps, by epochs or by minutes skips no update, does not diverge and ends with a finite bound.
The default suite runs the CPU preset; the MNIST-size ones take about an hour on 2 cores (slow), and
their committed figures are docs/presets.json, shown in docs/benchmarks.md."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from matnet.preset_check import FORMS, budget_form, check_presets, summary_table
from matnet.presets import PRESETS, preset
from matnet.schedule import warmup_steps
from tests.helpers import ROOT


def test_each_budget_form_bounds_the_run_as_it_says():
    cfg = preset("mnist-conv")
    steps, epochs, minutes = (budget_form(cfg, form, 30, 1.5) for form in FORMS)
    assert steps.train.max_steps == 30 and steps.train.epochs == cfg.train.epochs
    assert epochs.train.epochs == 1 and epochs.data.train_limit == 30 * cfg.train.batch_size
    assert minutes.train.max_minutes == 1.5 and minutes.train.max_steps == 0
    # The warm-up each gets: a short run's floor, and a time-limited run the budget's full 200 steps.
    assert (warmup_steps(steps, 30), warmup_steps(epochs, 30), warmup_steps(minutes, 250 * 500)) == (10, 10, 200)


def test_the_cpu_preset_trains_under_every_budget_form():
    r = check_presets(["tiny"], [0], steps=12, minutes=0.1, device="cpu")
    assert r["passed"] == ["tiny"], r["runs"]
    assert [(x["form"], x["warmup_steps"], x["skipped_steps"]) for x in r["runs"]] == \
        [("steps", 10, 0), ("epochs", 10, 0), ("minutes", 200, 0)]
    assert all(x["val_elbo_nats"] > 0 for x in r["runs"])


def test_the_benchmarks_table_is_made_from_its_json():
    """docs/benchmarks.md shows docs/presets.json's check as summary_table makes it, and covers
    every preset (the ones whose data is not offline on stand-in files: scripts/stand_in_data.py)."""
    result = json.loads((ROOT / "docs" / "presets.json").read_text())
    assert summary_table(result) in (ROOT / "docs" / "benchmarks.md").read_text()
    assert {r["preset"] for r in result["runs"]} == set(PRESETS)
    assert {"date", "commit", "machine", "command"} <= set(result)


@pytest.mark.slow
def test_every_mnist_size_preset_trains_under_every_budget_form_from_three_seeds(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "stand_in_data.py"), str(tmp_path)], check=True,
                   timeout=600)
    names = ["mnist-fc", "mnist-conv", "mnist-quadrants", "omniglot-conv", "omniglot-conv-mixture"]
    r = check_presets(names, [0, 1, 2], steps=30, minutes=1.0, device="cpu", data_dir=str(tmp_path))
    assert r["passed"] == sorted(names), [x for x in r["runs"] if x["outcome"] != "trained"]
