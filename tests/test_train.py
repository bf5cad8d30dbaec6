import json
import subprocess
import sys

import pytest
import torch

import matnet.step as step_mod
import matnet.train as train_mod
from matnet.checkpoint import load_checkpoint
from matnet.nonfinite import NonFiniteLossError
from matnet.data import load_split
from matnet.evaluate import evaluate_iwae
from matnet.model import MatNet
from matnet.presets import preset
from matnet.train import train
from tests.helpers import micro_config


def test_a_short_training_on_real_mnist_lowers_the_test_nll(tmp_path):
    cfg = preset("tiny")
    cfg.train.device, cfg.train.max_steps, cfg.train.eval_every_steps = "cpu", 150, 150
    cfg.data.eval_limit = 200
    test = load_split(cfg.data, "test")
    torch.manual_seed(0)
    untrained = evaluate_iwae(MatNet(cfg.model, test.shape), test, k=10, limit=200, progress=False)
    metrics = train(cfg, tmp_path / "run", progress=False)
    model, _, _ = load_checkpoint(tmp_path / "run" / "checkpoint")
    trained = evaluate_iwae(model, test, k=10, limit=200, progress=False)
    assert untrained["nll_nats"] > 500            # ~ 784 log 2 at initialisation
    assert trained["nll_nats"] < untrained["nll_nats"] - 250, (untrained, trained)
    assert trained["nll_nats"] <= trained["elbo_nats"] + 1e-3  # IWAE is the tighter bound
    assert metrics["step"] == 150 and metrics["skipped_steps"] == 0
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [150]
    assert len(lines[0]["val_kl_per_layer"]) == 5


def test_resume_matches_an_uninterrupted_run(tmp_path):
    cfg = micro_config(max_steps=8, eval_every_steps=4, kl_warmup_steps=6)
    train(cfg, tmp_path / "straight", progress=False)
    # Stop after 4 steps, then run again on the same directory with the full budget.
    train(cfg.override("train.max_steps", 4), tmp_path / "resumed", progress=False)
    train(cfg, tmp_path / "resumed", progress=False)
    a, _, meta_a = load_checkpoint(tmp_path / "straight" / "checkpoint")
    b, _, meta_b = load_checkpoint(tmp_path / "resumed" / "checkpoint")
    assert meta_a["step"] == meta_b["step"] == 8
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    ma = [json.loads(s) for s in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(s) for s in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in mb] == [4, 8]
    assert ma[-1]["val_elbo_nats"] == mb[-1]["val_elbo_nats"]


def test_resume_refuses_another_model(tmp_path):
    cfg = micro_config(max_steps=2)
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(train_mod.ConfigError, match="another model"):
        train(cfg.override("model.top_latents", 4), tmp_path / "run", progress=False)


def test_non_finite_updates_are_skipped_and_counted(tmp_path, monkeypatch):
    real = step_mod.elbo_loss
    calls = {"n": 0}

    def sometimes_nan(out, w=1.0):
        calls["n"] += 1
        loss = real(out, w)
        return loss * float("nan") if calls["n"] in (2, 3) else loss

    monkeypatch.setattr(step_mod, "elbo_loss", sometimes_nan)
    m = train(micro_config(max_steps=6), tmp_path / "run", progress=False)
    assert m["skipped_steps"] == 2 and m["step"] == 6
    assert all(torch.isfinite(p).all() for p in load_checkpoint(tmp_path / "run" / "checkpoint")[0].parameters())


def test_divergence_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    cfg = micro_config(max_steps=4, eval_every_steps=2, max_nonfinite_in_a_row=3)
    real = step_mod.elbo_loss
    calls = {"n": 0}

    def nan_after_two(out, w=1.0):
        calls["n"] += 1
        return real(out, w) * (float("nan") if calls["n"] > 2 else 1.0)

    monkeypatch.setattr(step_mod, "elbo_loss", nan_after_two)
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        train(cfg.override("train.max_steps", 20), tmp_path / "run", progress=False)
    # Skipped updates leave the weights as they were: the last checkpoint (step 4, written while
    # steps 3-4 were being skipped) is still finite, and the error came at step 5 (3 in a row).
    model, _, meta = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert meta["step"] == 4 and meta["metrics"]["skipped_steps"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_command_lines_train_evaluate_sample(tmp_path):
    run = tmp_path / "run"
    cfg = micro_config()
    cfg.to_json(tmp_path / "cfg.json")
    r = run_cli("matnet.train", "--config", str(tmp_path / "cfg.json"), "--out", str(run), "--max-steps", "5",
                "--device", "cpu", "--quiet", "--set", "train.lr=5e-4")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == 5e-4
    r = run_cli("matnet.evaluate", str(run / "checkpoint"), "--samples", "4", "--limit", "12",
                "--json", str(tmp_path / "eval.json"), "--quiet")
    assert r.returncode == 0, r.stderr
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert {"nll_nats", "elbo_nats", "iwae_k", "n_images", "kl_per_layer"} <= figures.keys()
    assert figures["iwae_k"] == 4 and figures["n_images"] == 12 and len(figures["kl_per_layer"]) == 5
    assert "IWAE k=4" in r.stdout
    r = run_cli("matnet.sample", str(run / "checkpoint"), "--n", "16", "--out", str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr
    from PIL import Image
    assert Image.open(tmp_path / "s.png").size == (2 + 4 * 30, 2 + 4 * 30)


@pytest.mark.parametrize("args,expected", [
    (["--preset", "tiny", "--set", "train.learning_rate=1"], "unknown config key 'train.learning_rate'"),
    (["--preset", "tiny", "--set", "model.meta_modules=[{\"scale\": 5, \"width\": 8, \"modules\": 1, "
      "\"latent_channels\": 2}]"], "must divide the image size"),
    (["--preset", "nope"], "invalid choice"),
    # (The tiny preset's 7x7 layout does not fit 32x32 images: validation says so before any data is sought.)
    # (EMPTY is a folder that exists and holds no data set: a missing folder is an error of its own.)
    (["--preset", "tiny", "--data-dir", "EMPTY", "--set", "data.dataset=cifar10"], "must divide the image size 32"),
    (["--preset", "cifar10-conv", "--data-dir", "EMPTY"], "cifar-10-batches-py"),
    (["--preset", "cifar10-conv", "--data-dir", "/nonexistent"], "data.data_dir=/nonexistent: no such folder"),
])
def test_bad_input_is_one_line(tmp_path, args, expected):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    r = run_cli("matnet.train", *args, "--out", str(tmp_path / "run"), "--max-steps", "1", "--quiet")
    assert r.returncode == 2
    assert expected in r.stderr
    if "invalid choice" not in expected:  # argparse prints its usage line too
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
