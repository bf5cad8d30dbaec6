"""The benchmark's pieces run on the CPU: the real training loop's speed, and the prepared GPU check in
its reduced mode (the GPU figures themselves come from a device session: README, Benchmarks)."""
import json

import pytest
import torch

from matnet.bench import loop_throughput, main, step_profile
from tests.helpers import micro_config


def test_loop_throughput_times_the_real_loop_without_its_first_step():
    r = loop_throughput(micro_config(), torch.device("cpu"), steps=4, batch=50)
    assert r["batch_size"] == 50 and r["steps"] == 4 and not r["compiled"]
    assert r["images_per_s"] > 0 and r["first_step_seconds"] > 0 and r["skipped_steps"] == 0
    assert r["step_ms"] == pytest.approx(1e3 * 50 / r["images_per_s"])


def test_step_profile_counts_ops_and_flops():
    r = step_profile(micro_config(), torch.device("cpu"), batch=20, steps=2, profile_steps=1)
    assert r["flops_per_step"] > 1e8 and r["aten_ops_per_step"] > 100 and r["kernels_per_step"] is None


def test_bad_bench_arguments_are_one_line_errors():
    from matnet.config import ConfigError
    with pytest.raises(ConfigError, match="--models"):
        main(["quality", "--models", "nope"])
    with pytest.raises(ConfigError, match="--steps"):
        main(["--steps", "-1", "--device", "cpu"])


@pytest.mark.slow
def test_the_gpu_check_runs_in_its_reduced_mode(tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT
    r = subprocess.run([sys.executable, "scripts/gpu_check.py", "--quick", "--device", "cpu", "--budget-minutes", "6",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    r = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = r["parts"]
    assert parts["divergence"]["divergences"] == 0 and len(parts["divergence"]["runs"]) == 3
    assert parts["resume"]["identical"] is True
    for name in ("loop_speed", "step", "iwae", "concurrency", "largest"):
        assert name in parts and "error" not in parts[name], (name, parts.get(name))
