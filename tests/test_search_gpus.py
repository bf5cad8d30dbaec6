"""Several trials per GPU, the scheduling side, on a machine without one: a private local Ray that
declares two logical GPUs runs a search whose trials ask for half a GPU each. Four trials run at
once, each sees the GPU id Ray assigned it (two trials per id), finds no usable CUDA device and says
so in one line, and trains on the CPU; the export's IWAE runs as a Ray task with a trial's resources."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import small_space, write_space

def run_search(tmp_path: Path, device: str, steps: int = 30) -> subprocess.CompletedProcess:
    space = small_space("gpus", n=4, steps=steps, strategy="random", mlflow={"enabled": False},
                        experiment={"max_concurrent": 0, "resources": {"cpu": 0.5, "gpu": 0.5}, "max_failures": 0},
                        data={"dataset": "mnist", "train_limit": 500, "eval_limit": 50},
                        search={"train.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-3, "log": True}},
                        export={"iwae_k": 2, "limit": 10})
    space["fixed"]["train"]["device"] = device
    space = write_space(tmp_path, device, space)
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}  # every trial's warning, not one line for the identical ones
    return subprocess.run([sys.executable, "-m", "search.run", str(space), "--storage", str(tmp_path / device),
                           "--num-gpus", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)


def intervals(exp_dir: Path) -> list[tuple[float, float]]:
    """(start, end) wall times of every trial, from Tune's result.json lines."""
    out = []
    for f in exp_dir.glob("run_trial_*/result.json"):
        lines = [json.loads(line) for line in f.read_text().splitlines()]
        out.append((lines[0]["timestamp"] - lines[0]["time_total_s"], lines[-1]["timestamp"]))
    return out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a trial does without a usable CUDA device")
def test_four_half_gpu_trials_share_two_logical_gpus_and_say_they_found_no_cuda(tmp_path):
    # Ray starts the trials' worker processes a few seconds apart on two cores (each imports torch): the
    # trials must outlast that for all four to be seen running at once.
    r = run_search(tmp_path, "auto", steps=120)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    exp_dir = tmp_path / "auto" / "gpus"
    trials = json.loads((exp_dir / "trials.json").read_text())["trials"]
    assert len(trials) == 4 and all(t["outcome"] == "completed" for t in trials.values())
    ids = sorted(t["last"]["gpu_ids"] for t in trials.values())
    assert ids == ["0", "0", "1", "1"], ids  # each its own assignment, two trials per GPU
    assert all(t["last"]["device"] == "cpu" for t in trials.values())
    spans = intervals(exp_dir)
    assert any(sum(s <= t < e for s, e in spans) == 4 for t, _ in spans), spans  # all four at once
    warnings = [line for line in (r.stdout + r.stderr).splitlines() if "finds no usable CUDA device" in line]
    assert len(warnings) >= 4 and all("training on the CPU" in w for w in warnings), warnings
    evaluation = json.loads((exp_dir / "summary.json").read_text())["best"]["evaluation"]
    assert evaluation["iwae_k"] == 2 and evaluation["n_images"] == 10 and evaluation["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a trial does without a usable CUDA device")
def test_a_trial_that_must_have_cuda_fails_with_one_line(tmp_path):
    r = run_search(tmp_path, "cuda")
    trials = json.loads((tmp_path / "cuda" / "gpus" / "trials.json").read_text())["trials"]
    assert trials and all(t["outcome"] == "error" for t in trials.values())
    error = next(iter(trials.values()))["error"]
    assert "finds no usable CUDA device" in error and "train.device: cpu" in error and "\n" not in error
    # Every trial errored: the search's exit status for errored trials, its last line saying why.
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 3 and "trials errored" in last and "finds no usable CUDA device" in last, r.stderr[-2000:]
