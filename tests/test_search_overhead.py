"""search.bench (the overhead of real trials): a small search of the quickstart's trials runs and
splits the trial slots' time into parts that add up to it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def test_the_overhead_benchmark_accounts_for_every_second_of_the_slots(tmp_path):
    out = tmp_path / "overhead.json"
    r = subprocess.run([sys.executable, "-m", "search.bench", "--trials", "2", "--concurrent", "2", "--steps", "10",
                        "--every", "5", "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    f = json.loads(out.read_text())
    assert f["trials"] == 2 and f["slots"] == 2 and f["steps_per_trial"] == 10
    assert f["slot_s"] == pytest.approx(2 * f["search_wall_s"], abs=0.02)
    parts = f["seconds"]
    assert set(parts) == {"updates", "evaluations, checkpoints", "reporting to Tune", "trial start", "Ray, idle"}
    assert sum(parts.values()) == pytest.approx(f["slot_s"], abs=0.06)
    assert all(v >= 0 for v in parts.values()) and parts["updates"] > 0 and parts["trial start"] > 0
    assert 0 < f["updates_fraction"] < f["training_fraction"] < 1
    assert "training fraction" in r.stdout and "where the slots went" in r.stdout
    assert "TensorBoard" not in r.stdout + r.stderr and "WARNING" not in r.stdout + r.stderr
