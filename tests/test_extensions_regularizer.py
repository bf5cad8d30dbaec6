"""The inference regularizer (eq. 13): only the inference network learns from it."""
import json

import pytest
import torch

from matnet.config import ConfigError

from matnet.sections import MetaModule, ModelConfig
from matnet.model import MatNet
from matnet.objectives import elbo_loss, inference_regularizer
from matnet.presets import preset
from matnet.train import train
from tests.helpers import micro_config

SMALL = [MetaModule(7, 8, 1, 2), MetaModule(14, 8, 1, 2)]
MODELS = {
    "plain": lambda: MatNet(ModelConfig(top_latents=4, meta_modules=SMALL, data_width=4), (1, 28, 28)),
    "fc": lambda: MatNet(ModelConfig(top_latents=4, meta_modules=[MetaModule(0, 16, 2, 4)], data_width=8),
                         (1, 28, 28)),
    "mixture": lambda: MatNet(ModelConfig(top_latents=4, meta_modules=SMALL, data_width=4, mixture_components=3,
                                          mixture_learn_weights=True, mixture_entropy_weight=0.1), (1, 28, 28)),
    "head": lambda: MatNet(ModelConfig(likelihood="logistic", top_latents=4, meta_modules=[MetaModule(4, 8, 1, 2)],
                                       data_width=4, ar_layers=2, ar_channels=6), (3, 8, 8)),
}


def test_inference_and_generator_parameters_partition_the_model():
    for name in ("tiny", "mnist-fc"):
        model = MatNet(preset(name).model, (1, 28, 28))
        gen = dict(model.named_generator_parameters())
        inf = dict(model.named_inference_parameters())
        assert not gen.keys() & inf.keys()
        assert gen.keys() | inf.keys() == dict(model.named_parameters()).keys()
        for n in gen:
            assert n.startswith(("td_top.", "td_up.", "td_out_of_finest.")) or ".td." in n, n
        for n in inf:
            assert n.startswith(("data_in.", "bu_into_finest.", "bu_down.", "merge_up.", "top_posterior.")) \
                or ".bu." in n or ".merge." in n, n
    model = MODELS["mixture"]()
    assert {n for n, _ in model.named_generator_parameters() if n.startswith("top_prior.")} == \
        {"top_prior.means", "top_prior.logvars", "top_prior.logits"}
    model = MODELS["head"]()
    assert any(n.startswith("ar_head.") for n, _ in model.named_generator_parameters())
    assert not any(n.startswith("ar_head.") for n, _ in model.named_inference_parameters())


@pytest.mark.parametrize("kind", list(MODELS))
def test_the_generator_gets_no_gradient_from_the_regularizer(kind):
    torch.manual_seed(0)
    model = MODELS[kind]()
    inference_regularizer(model, 4).backward()
    for n, p in model.named_generator_parameters():
        assert p.grad is None or not p.grad.any(), f"generator parameter {n} got a gradient"
    without = [n for n, p in model.named_inference_parameters() if p.grad is None or not p.grad.any()]
    assert not without, f"inference parameters without a gradient: {without}"


@pytest.mark.parametrize("kind", list(MODELS))
def test_adding_the_regularizer_leaves_the_generator_gradient_exactly_as_it_was(kind):
    torch.manual_seed(0)
    model = MODELS[kind]()
    shape = model.image_shape
    x = torch.bernoulli(torch.full((4, *shape), 0.3)) if model.cfg.likelihood == "bernoulli" \
        else torch.randint(0, 256, (4, *shape)).float()

    def grads(lam):
        model.zero_grad()
        torch.manual_seed(1)
        loss = elbo_loss(model(x))
        if lam:
            loss = loss + lam * inference_regularizer(model, 4)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, regularized = grads(0.0), grads(2.0)
    gen = {n for n, _ in model.named_generator_parameters()}
    for n in plain:
        if n in gen:
            assert torch.equal(plain[n], regularized[n]), n
    assert any(not torch.equal(plain[n], regularized[n]) for n in plain if n not in gen)


def test_the_regularizer_tightens_the_bound_on_model_samples():
    # Eq. 13 maximises the free energy of the model's own samples over q: a few steps of it alone
    # raise that free energy (log p(x) of the samples cannot move: the generator is fixed).
    torch.manual_seed(0)
    # Posteriors and priors that start far apart (unit parameter scale), so there is a gap to close.
    model = MatNet(ModelConfig(top_latents=4, meta_modules=SMALL, data_width=4, param_scale_init=1.0), (1, 28, 28))
    opt = torch.optim.Adam([p for _, p in model.named_inference_parameters()], lr=3e-3)
    gen_before = {n: p.clone() for n, p in model.named_generator_parameters()}

    def free_energy():
        torch.manual_seed(123)
        with torch.no_grad():
            return -inference_regularizer(model, 200).item()

    before = free_energy()
    for _ in range(40):
        opt.zero_grad()
        inference_regularizer(model, 32).backward()
        opt.step()
    assert free_energy() > before + 3.0  # about 7 nats in fact
    assert all(torch.equal(p, gen_before[n]) for n, p in model.named_generator_parameters())


def test_training_with_the_regularizer(tmp_path):
    cfg = micro_config(max_steps=4, eval_every_steps=2, inference_reg_weight=0.5)
    m = train(cfg, tmp_path / "run", progress=False)
    assert m["step"] == 4 and m["skipped_steps"] == 0
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(l["train_loss"])) for l in lines)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["inference_reg_weight"] == 0.5
    with pytest.raises(ConfigError, match="inference_reg_weight"):
        train(micro_config(max_steps=1, inference_reg_weight=-1.0), tmp_path / "bad", progress=False)
