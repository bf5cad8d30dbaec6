"""The conditional MatNet (eqs. 3, 4, 6) and the two-stage model: the generator never sees the unknown
pixels, the bound counts only them, and MatNet itself is unchanged by the refactoring that lets a
model hold two BU + merge sets."""
from __future__ import annotations

import pytest
import torch

from matnet.build import build_model, is_conditional
from matnet.conditional import ConditionalMatNet
from matnet.config import ConfigError
from matnet.masks import quadrant_masks
from matnet.model import MatNet
from matnet.objectives import elbo_loss, iwae_bound
from matnet.presets import preset
from matnet.twostage import TwoStageMatNet
from tests.helpers import micro_config

SHAPE = (1, 28, 28)


def impute_config(two_stage=False):
    cfg = micro_config()
    cfg.data.task = "impute"
    cfg.model.two_stage = two_stage
    return cfg


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.full((n, *SHAPE), 0.3), generator=g)
    known = quadrant_masks(n, 28, 0, g)
    # The same known pixels, every unknown pixel changed.
    x_other = torch.where(known, x, 1.0 - x)
    return x, x_other, known


def outputs_of(modules: list[torch.nn.Module], run) -> list[torch.Tensor]:
    """Every output of every submodule of `modules` while `run()` runs, in call order."""
    seen: list[torch.Tensor] = []

    def hook(_module, _inputs, out):
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, torch.Tensor):
                seen.append(t.detach().clone())

    handles = [m.register_forward_hook(hook) for top in modules for m in top.modules()]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


def test_the_generator_never_sees_the_unknown_pixels():
    torch.manual_seed(0)
    model = build_model(impute_config(), SHAPE)
    assert isinstance(model, ConditionalMatNet) and is_conditional(model)
    x, x_other, known = batch()
    # p(z_0 | x_k), from the generator's BU network.
    for a, b in zip(model.prior_top(x, known), model.prior_top(x_other, known)):
        assert torch.equal(a, b)
    # Imputations and the generator's likelihood parameters, given the same noise.
    torch.manual_seed(1)
    imp = model.impute(x, known)
    torch.manual_seed(1)
    assert torch.equal(imp, model.impute(x_other, known))
    torch.manual_seed(2)
    gen = model.generate(x, known)
    torch.manual_seed(2)
    assert torch.equal(gen, model.generate(x_other, known))
    # Inside the training pass, given the same latents: every output of every generator module (its BU
    # and merge modules, hence every p(z_i | z_<i, x_k), and the TD network) is the same...
    latents = model(x, known).latents
    generator = [model.generator, model.td]
    seen = outputs_of(generator, lambda: model(x, known, latents=latents))
    seen_other = outputs_of(generator, lambda: model(x_other, known, latents=latents))
    assert len(seen) == len(seen_other) > 50
    assert all(torch.equal(a, b) for a, b in zip(seen, seen_other))
    # ... while the inference network does see them (the check above is not vacuous).
    q = outputs_of([model.inference], lambda: model(x, known, latents=latents))
    q_other = outputs_of([model.inference], lambda: model(x_other, known, latents=latents))
    assert not all(torch.equal(a, b) for a, b in zip(q, q_other))


def test_the_two_stage_generator_never_sees_the_unknown_pixels():
    torch.manual_seed(0)
    model = build_model(impute_config(two_stage=True), SHAPE)
    assert isinstance(model, TwoStageMatNet)
    x, x_other, known = batch()
    torch.manual_seed(3)
    guess = model.guess(x, known)
    torch.manual_seed(3)
    assert torch.equal(guess, model.guess(x_other, known))
    torch.manual_seed(4)
    imp = model.impute(x, known, mean=False)
    torch.manual_seed(4)
    assert torch.equal(imp, model.impute(x_other, known, mean=False))
    assert torch.equal(imp * known, x * known)  # known pixels are kept


def test_the_bound_counts_only_the_unknown_pixels():
    torch.manual_seed(0)
    model = build_model(impute_config(), SHAPE)
    x, _, known = batch()
    out = model(x, known)
    per_pixel = -torch.nn.functional.binary_cross_entropy_with_logits(out.params, x, reduction="none")
    assert torch.allclose(out.log_px, (per_pixel * (~known)).flatten(1).sum(1), atol=1e-4)
    # Every latent layer has a KL between two Gaussians, z_0's included.
    assert out.kl_per_layer.shape == (6, model.num_layers) and (out.kl_per_layer >= 0).all()
    assert torch.allclose(out.elbo, out.log_px - out.kl_per_layer.sum(1))
    # With more pixels known, fewer are scored: the NLL of the unknown ones shrinks.
    all_but_one = quadrant_masks(6, 28, 3, torch.Generator().manual_seed(5))
    one = ~quadrant_masks(6, 28, 1, torch.Generator().manual_seed(5)) | all_but_one
    assert (model(x, all_but_one).log_px > model(x, ~all_but_one | ~one).log_px - 1e-3).all()
    # IWAE over the conditional model: above the ELBO on average, finite.
    model.eval()
    est = iwae_bound(model, x, 20, known=known)
    assert torch.isfinite(est.iwae).all() and est.iwae.mean() >= est.elbo.mean() - 0.05


def test_every_module_of_both_stages_learns():
    torch.manual_seed(0)
    for two_stage in (False, True):
        model = build_model(impute_config(two_stage), SHAPE).train()
        x, _, known = batch(4)
        elbo_loss(model(x, known)).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not missing, missing


def test_the_presets_build_conditional_models():
    quadrants = build_model(preset("mnist-quadrants"), SHAPE)
    assert isinstance(quadrants, ConditionalMatNet) and quadrants.num_layers == 11
    assert quadrants.masks.kind == "quadrants" and quadrants.masks.visible == 0
    faces = preset("faces-occluders")
    model = build_model(faces, (3, 64, 64))
    assert isinstance(model, TwoStageMatNet)
    # Single TD modules at fully connected, 8x8, 16x16 and 32x32; three 20x20 occluders on 64x64.
    assert [(m.scale, m.modules) for m in faces.model.meta_modules] == [(0, 1), (8, 1), (16, 1), (32, 1)]
    assert model.layer_names() == ["z0 (fc)", "z1 (fc)", "z2 (8x8)", "z3 (16x16)", "z4 (32x32)"]
    assert model.masks.describe() == "occluders: 3 of 20x20"


def test_extensions_and_tasks_a_conditional_model_does_not_have_are_one_line_errors():
    for key, value, msg in (("model.mixture_components", 5, "mixture"), ("model.ar_layers", 2, "autoregressive"),
                            ("data.task", "denoise", "data.task")):
        with pytest.raises(ConfigError, match=msg) as e:
            build_model(impute_config().override(key, value), SHAPE)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="two_stage"):
        build_model(micro_config().override("model.two_stage", True), SHAPE)
    with pytest.raises(ConfigError, match="matnet.impute"):
        build_model(impute_config(), SHAPE).sample(4)


# The state-dict keys of the paper's layouts, in order, as the code before the refactoring wrote them
# (sha1 of the space-joined keys): checkpoints written then must still load, optimizer state included.
KEYS_BEFORE = {"mnist-conv": (219, "10da310c828daa73"), "mnist-fc": (149, "f4f1feda6a51d1b9"),
               "cifar10-conv-ar": (247, "469afdff744db1f3"), "omniglot-conv-mixture": (221, "35e690394f896f3e")}


@pytest.mark.parametrize("name", list(KEYS_BEFORE))
def test_matnet_keeps_its_parameter_names_and_order(name):
    import hashlib
    shape = (3, 32, 32) if "cifar" in name else SHAPE
    keys = list(MatNet(preset(name).model, shape).state_dict())
    assert (len(keys), hashlib.sha1(" ".join(keys).encode()).hexdigest()[:16]) == KEYS_BEFORE[name]
