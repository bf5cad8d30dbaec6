"""Conditional MatNets trained through matnet.train on real MNIST quadrants: they beat an unconditional
MatNet of the same budget at imputing, resume exactly, and the two-stage model trains too."""
from __future__ import annotations

import json

import torch

from matnet.build import is_conditional
from matnet.checkpoint import load_checkpoint
from matnet.data import load_split
from matnet.imputation import score
from matnet.masks import MaskMaker, fixed_masks
from matnet.train import train
from tests.helpers import micro_config

# The same budget for both models: 300 steps of 32 images (about 15 s each on two CPU cores). A
# conditional MatNet needs some 150 steps before its latents carry what it learns from x_k (until then
# it models the unknown pixels' marginal), an unconditional one learns from every pixel of every image:
# at this budget the conditional model's imputations are clearly better, while an unconditional
# model's NLL estimate (gibbs.py: optimistic at small k) still comes out lower than the conditional
# model's IWAE bound (README: the same holds after 6 minutes of training).
STEPS, BATCH, LR, SEED = 300, 50, 3e-3, 0


def test_a_conditional_model_imputes_quadrants_better_than_an_unconditional_one_of_the_same_budget(tmp_path):
    cfg = micro_config(max_steps=STEPS, eval_every_steps=STEPS, batch_size=BATCH, lr=LR, seed=SEED)
    cfg.data.train_limit, cfg.data.eval_limit = 10000, 100
    train(cfg, tmp_path / "generate", progress=False)
    train(cfg.override("data.task", "impute"), tmp_path / "impute", progress=False)
    unconditional, _, _ = load_checkpoint(tmp_path / "generate" / "checkpoint")
    conditional, _, _ = load_checkpoint(tmp_path / "impute" / "checkpoint")
    assert is_conditional(conditional) and not is_conditional(unconditional)

    test = load_split(cfg.data, "test")
    x = test.batch(torch.arange(100), torch.Generator().manual_seed(0))
    known = fixed_masks(MaskMaker("quadrants", 28, visible=2), 100, seed=0)   # half of each image unknown
    figures = {}
    for name, model in (("conditional", conditional), ("unconditional", unconditional)):
        torch.manual_seed(0)
        figures[name] = score(model, x, known, samples=4, k=5, batch_size=50, rows=1000, method="mwg", steps=10,
                              device=torch.device("cpu"), progress=False, desc=name)
    c, u = figures["conditional"], figures["unconditional"]
    assert c["unknown_pixels"] == u["unknown_pixels"] == 392
    # The squared error of the mean imputation (of 4) over the unknown half, per pixel value.
    assert c["mse"] < u["mse"] - 0.003, figures
    assert 0 < u["acceptance"] <= 1 and c["nll_nats"] < 100, figures


def test_impute_training_resumes_exactly_and_reports_the_bound_on_unknown_pixels(tmp_path):
    cfg = micro_config(max_steps=6, eval_every_steps=3).override("data.task", "impute")
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg.override("train.max_steps", 3), tmp_path / "resumed", progress=False)
    train(cfg, tmp_path / "resumed", progress=False)
    a, _, _ = load_checkpoint(tmp_path / "straight" / "checkpoint")
    b, _, _ = load_checkpoint(tmp_path / "resumed" / "checkpoint")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    # The fill of unknown pixels is the training data's mean (MNIST: about 0.13), saved with the weights.
    assert abs(a.data_mean.item() - 0.13) < 0.01
    lines = [json.loads(s) for s in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    # The bound counts only unknown pixels (on average half an image): well under a full image's NLL.
    assert 50 < lines[-1]["val_elbo_nats"] < 400 and len(lines[-1]["val_kl_per_layer"]) == 5


def test_the_two_stage_model_trains_through_the_same_loop(tmp_path):
    cfg = micro_config(max_steps=4).override("data.task", "impute").override("model.two_stage", True)
    m = train(cfg, tmp_path / "run", progress=False)
    assert m["skipped_steps"] == 0 and torch.isfinite(torch.tensor(m["val_elbo_nats"]))
    # The training loss holds both stages' bounds; the reported bound is stage 2's.
    assert m["train_loss"] > m["train_elbo_nats"] + 50
    model, _, _ = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert type(model).__name__ == "TwoStageMatNet" and model.stage2.data_mean.item() > 0.1
