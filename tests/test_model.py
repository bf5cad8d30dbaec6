import pytest
import torch

from matnet.config import ConfigError

from matnet.sections import MetaModule, ModelConfig
from matnet.data import dataset_info
from matnet.model import MatNet
from matnet.objectives import elbo_loss, iwae_bound
from matnet.presets import PRESETS, preset



def fake_batch(likelihood, shape, n=3):
    if likelihood == "bernoulli":
        return torch.bernoulli(torch.full((n, *shape), 0.3))
    return torch.randint(0, 256, (n, *shape)).float()


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_has_the_right_shapes(name):
    cfg = preset(name)
    shape = dataset_info(cfg.data.dataset)
    model = MatNet(cfg.model, shape)
    x = fake_batch(cfg.model.likelihood, shape)
    out = model(x)
    n_layers = 1 + sum(m.modules for m in cfg.model.meta_modules)
    assert out.log_px.shape == (3,)
    assert out.kl_per_layer.shape == (3, n_layers) == (3, model.num_layers)
    assert out.log_ratio.shape == (3,)
    assert (out.kl_per_layer >= 0).all()
    assert (out.log_px <= 0).all()
    assert torch.isfinite(out.elbo).all()
    assert len(model.layer_names()) == n_layers == len(model.layer_meta())
    samples = model.sample(2)
    assert samples.shape == (2, *shape)


def test_paper_layouts():
    # The MNIST conv model has 11 latent layers (z_0 plus 5 at 7x7 and 5 at 14x14).
    assert MatNet(preset("mnist-conv").model, (1, 28, 28)).num_layers == 11
    # The CIFAR-10 model: z_0, 2 at 8x8, 4 at 16x16, 4 at 32x32.
    assert MatNet(preset("cifar10-conv").model, (3, 32, 32)).num_layers == 11


def test_every_module_gets_a_gradient():
    for name in ("tiny", "mnist-fc"):
        cfg = preset(name)
        model = MatNet(cfg.model, (1, 28, 28))
        loss = elbo_loss(model(fake_batch("bernoulli", (1, 28, 28), 4)))
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not missing, f"{name}: no gradient for {missing}"


def test_kl_is_per_layer_and_matches_the_elbo():
    model = MatNet(preset("tiny").model, (1, 28, 28))
    out = model(fake_batch("bernoulli", (1, 28, 28)))
    assert torch.allclose(out.elbo, out.log_px - out.kl_per_layer.sum(1))


def test_iwae_is_above_the_elbo_and_grows_with_k():
    torch.manual_seed(0)
    model = MatNet(preset("tiny").model, (1, 28, 28)).eval()
    x = fake_batch("bernoulli", (1, 28, 28), 4)
    torch.manual_seed(1)
    est1 = iwae_bound(model, x, 1)
    # With K = 1 the IWAE bound is a one-sample estimate of the ELBO: equal in expectation.
    mean1 = torch.stack([iwae_bound(model, x, 1).iwae for _ in range(50)]).mean(0)
    est = {k: torch.stack([iwae_bound(model, x, k, rows_per_pass=64).iwae for _ in range(5)]).mean(0)
           for k in (5, 50, 200)}
    assert est1.iwae.shape == (4,)
    assert (est[200] >= est1.elbo - 1e-3).all()       # IWAE_k >= ELBO
    assert est[5].mean() >= mean1.mean() - 0.05
    assert est[50].mean() >= est[5].mean() - 0.05      # non-decreasing in K, on average
    assert est[200].mean() >= est[50].mean() - 0.05
    assert (est[200].mean() - mean1.mean()) > 0.1      # and it does tighten


def test_iwae_chunking_is_exact():
    # Splitting K samples into passes must not change the estimate beyond sampling noise: same seed,
    # same samples in the same order give the same number.
    model = MatNet(preset("tiny").model, (1, 28, 28)).eval()
    x = fake_batch("bernoulli", (1, 28, 28), 2)
    torch.manual_seed(5)
    a = iwae_bound(model, x, 16, rows_per_pass=32).iwae
    torch.manual_seed(5)
    b = iwae_bound(model, x, 16, rows_per_pass=32).iwae
    assert torch.equal(a, b)


@pytest.mark.parametrize("layout,msg", [
    ([MetaModule(7, 8, 1, 2), MetaModule(0, 8, 1, 2)], "fully connected"),
    ([MetaModule(5, 8, 1, 2)], "divide"),
    ([MetaModule(14, 8, 1, 2), MetaModule(7, 8, 1, 2)], "coarse to fine"),
    ([], "empty"),
])
def test_bad_layouts_are_one_line_errors(layout, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        MatNet(ModelConfig(meta_modules=layout), (1, 28, 28))
    assert "\n" not in str(e.value)


def test_other_layouts_build():
    # Layouts a search may propose: one scale only, three scales, a fully-connected meta module
    # followed by convolutional ones.
    for layout in ([MetaModule(14, 16, 2, 2)],
                   [MetaModule(7, 16, 1, 2), MetaModule(14, 16, 1, 2), MetaModule(28, 8, 1, 2)],
                   [MetaModule(0, 32, 2, 8), MetaModule(7, 16, 1, 2)]):
        model = MatNet(ModelConfig(meta_modules=layout, data_width=8), (1, 28, 28))
        out = model(fake_batch("bernoulli", (1, 28, 28)))
        assert out.kl_per_layer.shape[1] == 1 + sum(m.modules for m in layout)


def test_deterministic_meta_modules_make_a_one_latent_layer_baseline():
    # latent_channels = 0: the same network with z_0 as its only stochastic layer (the bench's
    # baseline). Its TD modules still learn; there is nothing for merge modules to infer.
    from matnet.bench import baseline_config
    cfg = baseline_config()
    model = MatNet(cfg.model, (1, 28, 28))
    assert model.num_layers == 1 and model.layer_meta() == [-1]
    x = fake_batch("bernoulli", (1, 28, 28), 4)
    out = model(x)
    assert out.kl_per_layer.shape == (4, 1)
    elbo_loss(out).backward()
    assert all(p.grad is not None for m in model.metas for p in m.td.parameters())
    assert model.sample(2).shape == (2, 1, 28, 28)
    est = iwae_bound(model.eval(), x, 20)
    assert torch.isfinite(est.iwae).all()
