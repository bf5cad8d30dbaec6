"""Early-training stability (the KL spikes and bf16 divergence of issue 10), the device-side skip of
non-finite updates, and what a diverged run says."""
import math

import pytest
import torch

import matnet.blocks as blocks
import matnet.device as device_mod
import matnet.step as step_mod
from matnet.config import ConfigError
from matnet.model import MatNet
from matnet.nonfinite import NonFiniteLossError
from matnet.schedule import MIN_WARMUP_STEPS
from matnet.step import TrainStep, make_optimizer
from matnet.train import learning_rate_at, train, warmup_steps
from tests.helpers import micro_config


def early_run(monkeypatch, precision: str, lr_warmup_steps: int, steps: int = 24):
    """Train the micro model for `steps` steps in the regime where mnist-conv spikes: KL warm-up
    (weight ~0), betas (0.8, 0.99), and lr 1e-2 (the micro model's 16-channel convolutions need a
    10x larger step than mnist-conv's 64-channel ones, whose merge convolutions take 1,728 inputs,
    for the same compounding of its residual modules). Returns the -ELBO of every step (skipped ones
    too) and the final metrics."""
    if precision == "bf16":
        monkeypatch.setattr(device_mod, "AUTOCAST_DEVICES", ("cuda", "cpu"))
    neg_elbo = []
    real = step_mod.elbo_loss

    def recording(out, w=1.0):
        neg_elbo.append(-float(out.elbo.detach().float().mean()))
        return real(out, w)

    monkeypatch.setattr(step_mod, "elbo_loss", recording)
    cfg = micro_config(max_steps=steps, eval_every_steps=steps, kl_warmup_steps=12500, lr=1e-2, betas=(0.8, 0.99),
                       amp=precision == "bf16", lr_warmup_steps=lr_warmup_steps)
    cfg.data.eval_limit = 100
    metrics = train(cfg, None, progress=False)
    return neg_elbo, metrics


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_adams_first_steps_blow_up_without_the_warm_up_and_not_with_it(monkeypatch, precision):
    # Without the learning-rate warm-up (the behaviour before it existed): Adam's first updates move
    # every weight by ~lr, the merge states (eq. 10) compound to ~100x, the finest posterior's
    # log-variance (eq. 11) reaches ~50, and exp() of it makes the KL ~1e19 and a gradient non-finite.
    before, m_before = early_run(monkeypatch, precision, lr_warmup_steps=0)
    assert max(before) > 1e12 and m_before["skipped_steps"] >= 1, (max(before), m_before["skipped_steps"])
    # With the default warm-up of a run of 2,000 steps or more (2 / (1 - beta2) = 200 steps; every
    # preset's run is longer) the same steps stay finite and no update is skipped. (The KL still rises
    # to thousands of nats by step ~20: with a KL weight of ~0.002 the objective asks for sharp
    # posteriors, and it gets them at the pace Adam allows.)
    after, m_after = early_run(monkeypatch, precision, lr_warmup_steps=200)
    assert all(math.isfinite(v) for v in after) and max(after) < 1e5, max(after)
    assert m_after["skipped_steps"] == 0


def test_the_warm_up_follows_beta2_and_older_configs_run_without_it():
    cfg = micro_config(betas=(0.9, 0.99), lr=1e-3)
    assert warmup_steps(cfg) == 200
    assert learning_rate_at(cfg, 0, 20) == pytest.approx(1e-3 / 200)
    assert learning_rate_at(cfg, 199, 20) == learning_rate_at(cfg, 5000, 20) == pytest.approx(1e-3)
    # A run shorter than 2,000 steps warms up over a tenth of it: a search trial of 120 steps reaches
    # its rate at step 12, not never; but never over fewer than 10 steps, however short the run.
    assert warmup_steps(cfg, 2000) == warmup_steps(cfg, 10**6) == 200 and warmup_steps(cfg, 120) == 12
    assert warmup_steps(cfg, 40) == warmup_steps(cfg, 3) == MIN_WARMUP_STEPS == 10
    assert learning_rate_at(cfg, 5, 20, 120) == pytest.approx(1e-3 * 6 / 12)
    assert learning_rate_at(cfg, 11, 20, 120) == learning_rate_at(cfg, 119, 20, 120) == pytest.approx(1e-3)
    assert warmup_steps(cfg.override("train.lr_warmup_steps", 50), 120) == 50  # set: taken as it is
    from matnet.validate import validate
    with pytest.raises(ConfigError, match="lr_warmup_steps"):  # refused where every rule is checked, once
        validate(cfg.override("train.lr_warmup_steps", -5))


class NoHostReads:
    """Makes every way of reading a tensor back to the host an error inside the block."""

    NAMES = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")

    def __enter__(self):
        self.saved = {n: getattr(torch.Tensor, n) for n in self.NAMES}

        def refuse(name):
            def f(*a, **k):
                raise AssertionError(f"Tensor.{name} inside the training step")
            return f

        for n in self.NAMES:
            setattr(torch.Tensor, n, refuse(n))

    def __exit__(self, *exc):
        for n, f in self.saved.items():
            setattr(torch.Tensor, n, f)


def test_the_training_step_reads_nothing_back_and_skips_on_the_device():
    cfg = micro_config()
    model = MatNet(cfg.model, (1, 28, 28))
    opt = make_optimizer(model, cfg.train.betas, 1e-3, cfg.train.weight_decay)
    step = TrainStep(model, opt, torch.device("cpu"), amp=False, compile=False, grad_clip=100.0)
    x = torch.bernoulli(torch.full((8, 1, 28, 28), 0.2))
    with NoHostReads():
        step(x, 0, 1.0, 1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    moments = {k: v.clone() for k, v in opt.state[next(model.parameters())].items()}
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")  # a NaN pixel: the loss and every gradient are NaN
    with NoHostReads():
        step(bad, 1, 1.0, 1e-3)
        step(bad, 2, 1.0, 1e-3)
    # The skipped updates changed no parameter and no Adam moment, not even the step count.
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert all(torch.equal(moments[k], v) for k, v in opt.state[next(model.parameters())].items())
    c = step.read()
    assert (c["updates"], c["skipped"], c["in_a_row"], c["run_start"]) == (1, 2, 2, 1)
    step(x, 3, 1.0, 1e-3)
    c = step.read()
    assert (c["updates"], c["skipped"], c["in_a_row"]) == (1, 2, 0)
    assert not all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_a_diverged_run_names_the_step_and_the_first_module_that_went_non_finite(monkeypatch):
    real = blocks.TDModule.forward
    calls = {"n": 0}

    def nan_from_step_three(self, td_state, z):
        # micro_config has 4 TD modules with latents: 4 calls per training step.
        calls["n"] += 1
        out = real(self, td_state, z)
        return out * float("nan") if calls["n"] > 12 else out

    monkeypatch.setattr(blocks.TDModule, "forward", nan_from_step_three)
    cfg = micro_config(max_steps=20, eval_every_steps=100, max_nonfinite_in_a_row=4)
    with pytest.raises(NonFiniteLossError) as e:
        train(cfg, None, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "from step 3" in msg and "module metas.0.td.0 gave the first non-finite output" in msg


@pytest.mark.slow
def test_the_compiled_step_resumes_exactly_and_skips_on_the_device(tmp_path):
    """torch.compile's CPU path (inductor, a C++ compiler): the same guarantees as the eager step. The
    first compilation takes minutes on a small CPU; later models of the same layout reuse it."""
    from matnet.checkpoint import load_checkpoint
    cfg = micro_config(max_steps=8, eval_every_steps=4, kl_warmup_steps=6, compile="true")
    m = train(cfg, tmp_path / "straight", progress=False)
    assert m["compiled"] and m["skipped_steps"] == 0
    train(cfg.override("train.max_steps", 4), tmp_path / "resumed", progress=False)
    train(cfg, tmp_path / "resumed", progress=False)
    a, _, _ = load_checkpoint(tmp_path / "straight" / "checkpoint")
    b, _, _ = load_checkpoint(tmp_path / "resumed" / "checkpoint")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    model = MatNet(cfg.model, (1, 28, 28))
    opt = make_optimizer(model, cfg.train.betas, 1e-3, cfg.train.weight_decay)
    step = TrainStep(model, opt, torch.device("cpu"), amp=False, compile=True, grad_clip=100.0)
    x = torch.bernoulli(torch.full((100, 1, 28, 28), 0.2))
    step(x, 0, 1.0, 1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    step(bad, 1, 1.0, 1e-3)
    assert all(torch.equal(b0, p) for b0, p in zip(before, model.parameters()))
    c = step.read()
    assert (c["updates"], c["skipped"], c["in_a_row"]) == (1, 1, 1)


def test_a_resumed_run_keeps_the_warm_up_it_started_with(tmp_path):
    """The warm-up is a tenth of the run it started as (150 steps: 15); resumed with --max-steps 300 it
    stays 15 (recomputed, it would be 30: a run resumed with a much longer budget would drop back to a
    fraction of its rate mid-run)."""
    import json
    cfg = micro_config(max_steps=150, eval_every_steps=75, lr=1e-3, batch_size=20)
    cfg.data.eval_limit = 20
    first = train(cfg, tmp_path / "run", progress=False)
    assert first["warmup_steps"] == 15
    longer = train(cfg.override("train.max_steps", 300).override("train.epochs", 3), tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert longer["step"] == 300 and [m["warmup_steps"] for m in lines] == [15] * 4
    assert warmup_steps(cfg.override("train.max_steps", 300), 300) == 30


def test_a_run_with_a_time_limit_warms_up_as_its_step_budget_says_whatever_the_machines_pace():
    """train.max_minutes caps a run; its warm-up is the step budget's, so a config trains the same on a
    slow machine and a fast one. (Sized from the pace of the first steps, a tenth of the steps a CPU
    reaches in two minutes, it was 3 or 4 steps for mnist-quadrants, which then skipped most of its
    updates.)"""
    cfg = micro_config(max_steps=2000, epochs=100, eval_every_steps=1000, lr=1e-3, max_minutes=0.05)
    cfg.data.eval_limit = 50
    metrics = train(cfg, None, progress=False)
    assert metrics["step"] < 2000 and metrics["warmup_steps"] == warmup_steps(cfg, 2000) == 200
    short = cfg.override("train.max_steps", 120)
    assert train(short, None, progress=False)["warmup_steps"] == warmup_steps(short, 120) == 12
