"""Imputation with the autoregressive head (matnet/ar_impute.py) is exact where it can be checked by
enumeration: on a 2x2 binary image under a PixelCNN head, the Metropolis-Hastings step's draws of the
unknown pixels follow p(x_u | x_k, z), and the importance weights of the clamped raster proposal are
unbiased for p(x_k | z); and a real checkpoint with the head imputes through python -m matnet.impute."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from matnet import distributions as D
from matnet.ar_impute import clamped_draw, known_log_weight, update_unknown
from matnet.pixelcnn import PixelCNNHead
from tests.helpers import ROOT, micro_config

KNOWN = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2)  # pixels (0,0) and (1,1) known
X_KNOWN = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(1, 1, 2, 2)


def joint(model, td_out, x):
    return D.log_prob("bernoulli", model.ar_head(td_out, x), x).exp()


def laws(model, td_out):
    """p(x_u | x_k, z) and the proposal's law r(x_u | x_k, z) = the head's conditionals of the unknown
    pixels only, by enumeration."""
    target, proposal = {}, {}
    with torch.no_grad():
        for u, x in completions():
            target[u] = joint(model, td_out, x).item()
            logits = model.ar_head(td_out, x)
            per_pixel = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
            proposal[u] = (per_pixel * (1 - KNOWN)).sum().exp().item()
    total = sum(target.values())
    return {u: p / total for u, p in target.items()}, proposal


def toy():
    """A 2x2 binary image model: a PixelCNN head on a fixed z (its TD output), the first of a few seeds
    whose last known pixel depends strongly on the unknown ones (so the proposal alone is not the law)."""
    for seed in range(50):
        torch.manual_seed(seed)
        head = PixelCNNHead("bernoulli", 1, 2, 8, 0.1)
        for p in head.parameters():
            p.data.mul_(6.0)  # sharp conditionals
        model = SimpleNamespace(ar_head=head, cfg=SimpleNamespace(likelihood="bernoulli"))
        td_out = torch.randn(1, 1, 2, 2)
        target, proposal = laws(model, td_out)
        if max(abs(target[u] - proposal[u]) for u in target) > 0.15:
            return model, td_out
    raise AssertionError("no seed gave a head whose proposal differs from p(x_u | x_k, z)")


def completions():
    """Every image with the known pixels of X_KNOWN: the unknown pixels (0,1) and (1,0) in {0,1}^2."""
    for a, b in itertools.product((0.0, 1.0), repeat=2):
        x = X_KNOWN.clone()
        x[0, 0, 0, 1], x[0, 0, 1, 0] = a, b
        yield (a, b), x


def test_the_mh_step_leaves_p_of_the_unknown_pixels_given_the_known_ones_invariant():
    model, td_out = toy()
    exact, proposal_law = laws(model, td_out)
    chains = 6000
    state = X_KNOWN.repeat(chains, 1, 1, 1)  # every chain starts at x_u = (0, 0)
    td, known = td_out.repeat(chains, 1, 1, 1), KNOWN.repeat(chains, 1, 1, 1)
    torch.manual_seed(0)
    for _ in range(25):
        state, _ = update_unknown(model, td, state, known)
    assert torch.equal(state * known, X_KNOWN.repeat(chains, 1, 1, 1) * known)  # known pixels never move
    for (a, b), p in exact.items():
        seen = ((state[:, 0, 0, 1] == a) & (state[:, 0, 1, 0] == b)).float().mean().item()
        assert abs(seen - p) < 4 * (p * (1 - p) / chains) ** 0.5 + 0.005, (a, b, seen, p)
    # The proposal alone (no accept/reject) draws its own law, not p(x_u | x_k, z): the test tells them apart.
    proposal = clamped_draw(model, td, X_KNOWN.repeat(chains, 1, 1, 1), known)
    for (a, b), p in proposal_law.items():
        seen = ((proposal[:, 0, 0, 1] == a) & (proposal[:, 0, 1, 0] == b)).float().mean().item()
        assert abs(seen - p) < 4 * (p * (1 - p) / chains) ** 0.5 + 0.005, (a, b, seen, p)


def test_the_clamped_proposal_weights_are_unbiased_for_p_of_the_known_pixels():
    model, td_out = toy()
    with torch.no_grad():
        exact = sum(joint(model, td_out, x).item() for _, x in completions())  # p(x_k | z)
    n = 20000
    torch.manual_seed(1)
    w = known_log_weight(model, td_out.repeat(n, 1, 1, 1), X_KNOWN.repeat(n, 1, 1, 1), KNOWN.repeat(n, 1, 1, 1))
    estimate = w.exp().mean().item()
    assert abs(estimate - exact) < 4 * w.exp().std().item() / n ** 0.5, (estimate, exact)


@pytest.mark.parametrize("visible", [2])
def test_a_checkpoint_with_the_head_imputes_through_the_command(tmp_path, visible):
    from matnet.train import train
    cfg = micro_config(max_steps=4, eval_every_steps=4).with_overrides({"model.ar_layers": 1, "model.ar_channels": 8,
                                                                       "data.eval_limit": 20})
    train(cfg, tmp_path / "run", progress=False)
    r = subprocess.run([sys.executable, "-m", "matnet.impute", str(tmp_path / "run" / "checkpoint"), "--mask",
                        "quadrants", "--visible", str(visible), "--limit", "4", "--samples", "2", "--iwae-k", "3",
                        "--gibbs-steps", "2", "--grid-images", "2", "--out", str(tmp_path / "grid.png"), "--json",
                        str(tmp_path / "r.json"), "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert "autoregressive head" in result["method"] and result["nll_nats"] > 0 and 0 <= result["mse"] <= 1
    assert 0.0 <= result["table"][0]["acceptance"] <= 1.0 and (tmp_path / "grid.png").stat().st_size > 0


def test_a_cifar_format_checkpoint_with_the_head_imputes(tmp_path):
    """The model a CIFAR-10 search picks when model.ar_layers wins: 32x32 colour, discretized logistic,
    the head on top; trained on photographs written in CIFAR-10's own file format."""
    from matnet.sections import MetaModule
    from matnet.presets import preset
    from matnet.train import train
    from tests.cifar_files import photo_patches, write_cifar
    write_cifar(tmp_path / "data" / "cifar-10-batches-py", photo_patches())
    cfg = preset("cifar10-conv-ar").with_overrides({
        "data.data_dir": str(tmp_path / "data"), "data.val_size": 4, "data.eval_limit": 4,
        "model.ar_layers": 1, "model.ar_channels": 6, "model.data_width": 8, "model.top_latents": 4,
        "train.max_steps": 2, "train.eval_every_steps": 2, "train.batch_size": 4, "train.device": "cpu"})
    cfg.model.meta_modules = [MetaModule(16, 8, 1, 2), MetaModule(32, 8, 1, 2)]
    train(cfg, tmp_path / "run", progress=False)
    r = subprocess.run([sys.executable, "-m", "matnet.impute", str(tmp_path / "run" / "checkpoint"), "--mask", "centre",
                        "--limit", "2", "--samples", "1", "--iwae-k", "2", "--gibbs-steps", "1", "--grid-images", "1",
                        "--batch-size", "2", "--out", str(tmp_path / "grid.png"), "--json", str(tmp_path / "r.json"),
                        "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["n_images"] == 2 and result["nll_nats"] > 0 and "bpd" in result["table"][0]
