"""Colour models on a small data set in CIFAR-10's own file format cut from real photographs:
training and IWAE evaluation through matnet.train / matnet.evaluate, with the discretized logistic
(with and without the autoregressive head) and the dequantised Gaussian; bits per dimension."""
import json
import math

import pytest
import torch

from matnet import sample as sample_cli
from matnet.checkpoint import load_checkpoint
from matnet.sections import MetaModule
from matnet.data import load_split
from matnet.evaluate import evaluate_iwae
from matnet.presets import preset
from matnet.evaluate import bits_per_dim
from matnet.train import train
from tests.cifar_files import photo_patches, write_cifar


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_cifar(root / "cifar-10-batches-py", photo_patches(step_y=32, step_x=32))  # 567 patches
    return root


def colour_config(data_dir, likelihood, ar_layers=0):
    """The CIFAR-10 preset's layout (fc top, then 8x8, 16x16, 32x32), narrow and one module a scale."""
    cfg = preset("cifar10-conv")
    cfg.model.likelihood = likelihood
    cfg.model.top_latents = 8
    cfg.model.meta_modules = [MetaModule(8, 16, 1, 3), MetaModule(16, 12, 1, 3), MetaModule(32, 8, 1, 3)]
    cfg.model.data_width = 8
    cfg.model.ar_layers, cfg.model.ar_channels = ar_layers, 12
    cfg.data.data_dir, cfg.data.val_size, cfg.data.eval_limit = str(data_dir), 40, 40
    cfg.train.batch_size, cfg.train.lr, cfg.train.max_steps, cfg.train.eval_every_steps = 16, 3e-3, 30, 10
    cfg.train.device = "cpu"
    return cfg


@pytest.mark.parametrize("likelihood,ar_layers", [("logistic", 0), ("logistic", 2), ("gaussian", 0)])
def test_train_and_evaluate_a_colour_model(cifar_dir, tmp_path, likelihood, ar_layers):
    cfg = colour_config(cifar_dir, likelihood, ar_layers)
    torch.manual_seed(0)
    last = train(cfg, tmp_path / "run", progress=False)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [10, 20, 30] and last["skipped_steps"] == 0
    losses = [m["train_loss"] for m in lines]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses
    for m in lines:  # bits per dimension of the discrete 8-bit data, from the ELBO in nats
        assert 0 < m["val_bpd"] and m["val_bpd"] == pytest.approx(bits_per_dim(m["val_elbo_nats"], (3, 32, 32)))
    # Trained for 30 steps it is near a uniform model's 8 bits (the first evaluation, at the end of the
    # 10-step warm-up, may be worse than uniform: the Gaussian's 13.0 bits at step 10, seed 0).
    assert lines[-1]["val_bpd"] < 9
    assert (tmp_path / "run" / "kl_per_layer.png").stat().st_size > 0

    model, saved_cfg, _ = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert (model.ar_head is not None) == (ar_layers > 0)
    test = load_split(saved_cfg.data, "test")
    r = evaluate_iwae(model, test, k=20, limit=12, batch_size=6, progress=False)
    assert math.isfinite(r["nll_nats"]) and r["nll_nats"] <= r["elbo_nats"] + 1e-3  # IWAE >= ELBO
    assert r["bpd"] == pytest.approx(r["nll_nats"] / (3 * 32 * 32 * math.log(2)))
    assert 0 < r["bpd"] <= r["elbo_bpd"] < 10


def test_sampling_a_colour_model_with_a_head(cifar_dir, tmp_path, capsys):
    cfg = colour_config(cifar_dir, "logistic", ar_layers=2)
    cfg.train.max_steps, cfg.train.eval_every_steps = 2, 2
    train(cfg, tmp_path / "run", progress=False)
    out = tmp_path / "samples.png"
    with pytest.raises(SystemExit) as e:
        sample_cli.cli.run(sample_cli.main, [str(tmp_path / "run" / "checkpoint"), "--n", "2", "--draw",
                                             "--out", str(out), "--device", "cpu"])
    assert e.value.code == 0 and out.stat().st_size > 0
    from PIL import Image
    assert Image.open(out).size == (2 * 34 + 2, 34 + 2) and Image.open(out).mode == "RGB"


def test_a_likelihood_that_does_not_fit_the_data_is_refused(cifar_dir, tmp_path):
    from matnet.config import ConfigError
    cfg = colour_config(cifar_dir, "bernoulli")  # 8-bit pixels under a Bernoulli: nonsense numbers
    with pytest.raises(ConfigError, match="binarize"):
        train(cfg, tmp_path / "run", progress=False)
    cfg = colour_config(cifar_dir, "logistic")
    cfg.data.binarize = "dynamic"
    with pytest.raises(ConfigError, match="binarize"):
        train(cfg, tmp_path / "run2", progress=False)
