"""Scoring a checkpoint: which images a --limit scores, and the IWAE estimate's precision."""
import json
import subprocess
import sys

import pytest
import torch

import matnet.device as device_mod
from matnet.checkpoint import load_checkpoint
from matnet.data import load_split
from matnet.evaluate import evaluate_iwae
from matnet.subset import RULE, describe, subset_indices
from matnet.train import train
from tests.helpers import micro_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real checkpoint: the micro model after 200 steps on MNIST."""
    run = tmp_path_factory.mktemp("evaluate") / "run"
    torch.manual_seed(0)
    train(micro_config(max_steps=200, eval_every_steps=200), run, progress=False)
    return run / "checkpoint"


def test_a_subset_is_a_seeded_sample_spread_over_the_split():
    idx = subset_indices(10_000, 500, seed=0)
    assert len(idx) == len(set(idx.tolist())) == 500 and torch.equal(idx, idx.sort().values)
    # MNIST's test file holds NIST's SD-3 images before SD-1's: a fair sample draws from both halves.
    first_half = int((idx < 5000).sum())
    assert 200 < first_half < 300, first_half
    assert torch.equal(idx, subset_indices(10_000, 500, seed=0))        # the same for every model
    assert not torch.equal(idx, subset_indices(10_000, 500, seed=1))
    assert torch.equal(subset_indices(10_000, 0), torch.arange(10_000))  # 0: the whole split
    assert describe(10_000, 0) is None and describe(10_000, 500, 3) == {"n": 500, "of": 10_000, "seed": 3,
                                                                         "rule": RULE}


def test_evaluate_scores_the_sample_and_says_so(trained, tmp_path):
    model, cfg, _ = load_checkpoint(trained)
    test = load_split(cfg.data, "test")
    r = evaluate_iwae(model, test, k=4, limit=30, progress=False, subset_seed=5)
    assert r["n_images"] == 30 and r["subset"] == {"n": 30, "of": 10_000, "seed": 5, "rule": RULE}
    # The same figure from the chosen images alone (one batch holding all of them).
    chosen = subset_indices(10_000, 30, 5)
    alone = evaluate_iwae(model, test, k=4, limit=30, progress=False, subset_seed=5, batch_size=30)
    assert alone["nll_nats"] == pytest.approx(r["nll_nats"], abs=1e-3)
    assert chosen.max() > 5000 and chosen.min() < 5000
    out = subprocess.run([sys.executable, "-m", "matnet.evaluate", str(trained), "--samples", "3", "--limit", "20",
                          "--json", str(tmp_path / "e.json"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "20 of 10000 images, a seeded sample (seed 0): NOT the full split" in out.stdout
    assert json.loads((tmp_path / "e.json").read_text())["subset"]["n"] == 20


def test_bf16_changes_the_iwae_estimate_by_less_than_005_nats(trained, monkeypatch):
    # bf16 autocast on the CPU stands in for a GPU's lower-precision path: the networks run in bf16,
    # the importance weights (log p(x|z) and the Gaussian log-densities) stay fp32 and are combined by
    # a float64 log-sum-exp. The same seed gives both runs the same draws.
    model, cfg, _ = load_checkpoint(trained)
    test = load_split(cfg.data, "test")
    fp32 = evaluate_iwae(model, test, k=50, limit=100, progress=False)
    monkeypatch.setattr(device_mod, "AUTOCAST_DEVICES", ("cuda", "cpu"))
    bf16 = evaluate_iwae(model, test, k=50, limit=100, amp=True, progress=False)
    assert bf16["bf16"] and not fp32["bf16"]
    assert fp32["nll_nats"] < 200                      # a trained model, not one at initialisation
    assert abs(bf16["nll_nats"] - fp32["nll_nats"]) < 0.05, (fp32["nll_nats"], bf16["nll_nats"])
    assert bf16["nll_nats"] != fp32["nll_nats"]        # bf16 did run
