"""The Gaussian mixture prior over z_0 (section 2.3, eq. 12), its entropy penalty, and the
by-component grid of Figure 3 (`python -m matnet.sample --by-component`)."""
import json
import math

import pytest
import torch
import torch.distributions as td

from matnet import distributions as D
from matnet import sample as sample_cli
from matnet.checkpoint import save_checkpoint
from matnet.config import Config, ConfigError
from matnet.sections import MetaModule, ModelConfig
from matnet.mixture import MixturePrior, entropy
from matnet.model import MatNet
from matnet.objectives import elbo_loss, iwae_bound
from matnet.presets import preset
from tests.helpers import micro_config


def prior(k=4, d=3, learn=False, seed=0):
    torch.manual_seed(seed)
    p = MixturePrior(k, d, learn)
    with torch.no_grad():
        p.logvars.normal_(0, 0.5)
        if learn:
            p.logits.normal_(0, 1.0)
    return p


def as_torch(p: MixturePrior) -> td.MixtureSameFamily:
    comps = td.Independent(td.Normal(p.means, torch.exp(0.5 * p.logvars)), 1)
    return td.MixtureSameFamily(td.Categorical(logits=p.logits), comps)


def test_one_standard_component_is_the_plain_prior():
    p = MixturePrior(1, 5)
    with torch.no_grad():
        p.means.zero_()
    mq, lq = torch.randn(4, 5), torch.randn(4, 5) * 0.3
    kl, resp = p.kl(mq, lq)
    zeros = torch.zeros_like(mq)
    assert torch.allclose(kl, D.gaussian_kl(mq, lq, zeros, zeros), atol=1e-5)
    assert torch.equal(resp, torch.ones(4, 1))
    z = torch.randn(4, 5)
    assert torch.allclose(p.log_prob(z), D.gaussian_log_prob(z, zeros, zeros), atol=1e-5)


@pytest.mark.parametrize("learn", [False, True])
def test_equation_12_and_the_responsibilities(learn):
    p = prior(learn=learn)
    mq, lq = torch.randn(6, 3), torch.randn(6, 3) * 0.3
    kls = torch.stack([D.gaussian_kl(mq, lq, p.means[k].expand(6, 3), p.logvars[k].expand(6, 3))
                       for k in range(4)], 1)
    log_pi = torch.log_softmax(p.logits, 0) if learn else torch.full((4,), -math.log(4))
    expected = -torch.log((log_pi.exp() * torch.exp(-kls)).sum(1))   # eq. 12 with pi_k
    kl, resp = p.kl(mq, lq)
    assert torch.allclose(kl, expected, atol=1e-5)
    assert (kl >= 0).all()
    assert torch.allclose(resp, torch.softmax(log_pi - kls, 1), atol=1e-6)
    assert torch.allclose(resp.sum(1), torch.ones(6))


@pytest.mark.parametrize("learn", [False, True])
def test_equation_12_is_an_upper_bound_on_the_exact_kl(learn):
    # With a single Gaussian q the approximation bounds KL(q || mixture) from above (Jensen; see
    # mixture.py), so the ELBO it gives is still a lower bound. Exact KL by Monte Carlo.
    p = prior(learn=learn, seed=3)
    mq, lq = torch.randn(5, 3) * 1.5, torch.randn(5, 3) * 0.3
    n = 200_000
    z = mq + torch.exp(0.5 * lq) * torch.randn(n, 5, 3)
    log_q = td.Independent(td.Normal(mq, torch.exp(0.5 * lq)), 1).log_prob(z)
    with torch.no_grad():
        exact = (log_q - as_torch(p).log_prob(z)).mean(0)
        approx = p.kl(mq, lq)[0]
    assert (approx >= exact - 0.02).all(), (approx, exact)


@pytest.mark.parametrize("learn", [False, True])
def test_exact_log_density_and_sampling(learn):
    p = prior(learn=learn)
    z = torch.randn(7, 3) * 2
    with torch.no_grad():
        assert torch.allclose(p.log_prob(z), as_torch(p).log_prob(z), atol=1e-5)
    # Draws follow the weights: push the components far apart and count the nearest one.
    with torch.no_grad():
        p.means.copy_(torch.arange(4.0)[:, None] * 100)
        draws = p.sample(20_000)
        nearest = (draws[:, None, :] - p.means[None]).norm(dim=2).argmin(1)
    freq = torch.bincount(nearest, minlength=4).float() / 20_000
    assert torch.allclose(freq, p.log_weights().exp(), atol=0.02)
    assert ((p.sample(3, torch.tensor([2, 2, 2])) - 200).abs() < 20).all()


def mixture_model(weight=0.0, learn=False, k=5):
    cfg = ModelConfig(top_latents=4, meta_modules=[MetaModule(7, 8, 1, 2), MetaModule(14, 8, 1, 2)],
                      data_width=4, mixture_components=k, mixture_learn_weights=learn,
                      mixture_entropy_weight=weight)
    return MatNet(cfg, (1, 28, 28))


def binary(n):
    return torch.bernoulli(torch.full((n, 1, 28, 28), 0.3))


def test_a_matnet_with_a_mixture_prior():
    model = mixture_model(learn=True)
    x = binary(4)
    out = model(x)
    assert out.kl_per_layer.shape == (4, 3) and (out.kl_per_layer >= 0).all()
    assert out.penalty is None  # no entropy weight, no penalty
    # Column 0 holds the eq. 12 KL of z_0 under q(z_0|x).
    mean0, logvar0 = model.top_posterior(model.bottom_up(x)[1])
    assert torch.allclose(out.kl_per_layer[:, 0], model.top_prior.kl(mean0, logvar0)[0], atol=1e-5)
    elbo_loss(out).backward()
    for name in ("means", "logvars", "logits"):
        assert getattr(model.top_prior, name).grad.abs().sum() > 0, name
    resp = model.component_posterior(x)
    assert resp.shape == (4, 5) and torch.allclose(resp.sum(1), torch.ones(4))
    assert model.sample(3).shape == (3, 1, 28, 28)


def test_entropy_penalty_is_added_to_the_loss():
    model = mixture_model(weight=0.4)
    x = binary(6)
    out = model(x)
    resp = model.component_posterior(x)
    assert torch.allclose(out.penalty, 0.4 * entropy(resp), atol=1e-5)
    plain = -(out.log_px - out.kl_per_layer.sum(1)).mean()
    assert torch.allclose(elbo_loss(out), plain + 0.4 * entropy(resp).mean(), atol=1e-4)
    # The penalty sharpens: its gradient alone lowers the mean entropy.
    before = entropy(model.component_posterior(x)).mean()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        model(x).penalty.mean().backward()
        opt.step()
    assert entropy(model.component_posterior(x)).mean() < before


def test_iwae_is_above_the_elbo_with_a_mixture_prior():
    # IWAE weights use the exact log p(z_0); the ELBO uses eq. 12. IWAE_k >= exact ELBO >= eq.-12 ELBO.
    torch.manual_seed(0)
    model = mixture_model(k=8).eval()
    with torch.no_grad():  # components that matter: spread means, varied scales
        model.top_prior.means.mul_(2.0)
        model.top_prior.logvars.normal_(0, 0.5)
    x = binary(4)
    est = {k: torch.stack([iwae_bound(model, x, k, rows_per_pass=400).iwae for _ in range(4)]).mean(0)
           for k in (1, 100)}
    elbo = torch.stack([iwae_bound(model, x, 50, rows_per_pass=400).elbo for _ in range(4)]).mean(0)
    assert (est[100] >= elbo - 0.05).all(), (est[100], elbo)
    assert est[100].mean() > est[1].mean()


def test_sample_given_takes_the_top_layers_from_the_posterior():
    model = mixture_model().eval()
    x = binary(3)
    with pytest.raises(ConfigError, match="between 0"):
        model.sample_given(x, model.num_layers + 1)
    for k in range(model.num_layers + 1):
        assert model.sample_given(x, k).shape == x.shape
    # k = all layers is a reconstruction: the same draws as the training-time forward pass ...
    torch.manual_seed(1)
    recon = D.mean_image("bernoulli", model(x).params)
    torch.manual_seed(1)
    assert torch.equal(model.sample_given(x, model.num_layers), recon)
    # ... and k = 0 a free sample from the prior, whatever the input.
    torch.manual_seed(2)
    free = model.sample(3)
    torch.manual_seed(2)
    assert torch.equal(model.sample_given(x, 0), free)
    # In between, the posterior layers pull the samples towards the input's reconstruction.
    torch.manual_seed(3)
    d = {k: (torch.stack([model.sample_given(x, k) for _ in range(20)]) - recon).abs().mean().item()
         for k in (0, model.num_layers - 1)}
    assert d[model.num_layers - 1] < d[0]


def test_plain_models_say_they_have_no_mixture():
    with pytest.raises(ConfigError, match="mixture"):
        MatNet(preset("tiny").model, (1, 28, 28)).component_posterior(binary(1))
    with pytest.raises(ConfigError, match="mixture_components"):
        mixture_model(k=-1)


def test_old_configs_without_the_new_keys_still_load():
    d = Config().to_dict()
    for key in ("mixture_components", "mixture_learn_weights", "mixture_entropy_weight", "ar_layers", "ar_channels"):
        del d["model"][key]
    del d["train"]["inference_reg_weight"]
    cfg = Config.from_dict(d)
    assert cfg == Config()
    assert (cfg.model.mixture_components, cfg.model.ar_layers, cfg.train.inference_reg_weight) == (0, 0, 0.0)
    model = MatNet(cfg.model, (1, 28, 28))
    assert model.top_prior is None and model.ar_head is None


def test_omniglot_mixture_preset():
    cfg = preset("omniglot-conv-mixture")
    assert (cfg.model.mixture_components, cfg.model.mixture_entropy_weight) == (50, 0.4)


def test_by_component_grid(tmp_path, capsys):
    cfg = micro_config()
    cfg.model.mixture_components = 6
    torch.manual_seed(0)
    model = MatNet(cfg.model, (1, 28, 28))
    with torch.no_grad():  # an untrained model: spread the components so that several claim inputs
        model.top_prior.means.mul_(0.3)
    ckpt = save_checkpoint(tmp_path / "ckpt", model, cfg, {"step": 0})
    out, js = tmp_path / "fig3.png", tmp_path / "fig3.json"
    with pytest.raises(SystemExit) as e:
        sample_cli.cli.run(sample_cli.main, [str(ckpt), "--by-component", "--out", str(out), "--json", str(js),
                                             "--ks", "1,2,4,99", "--per-component", "2", "--limit", "300",
                                             "--device", "cpu"])
    assert e.value.code == 0, capsys.readouterr().err
    r = json.loads(js.read_text())
    assert r["ks"] == [1, 2, 4] and r["n_images"] == 300 and sum(r["assigned_per_component"]) == 300
    assert len(r["shown"]) >= 1
    # The inputs shown for a component are ones whose posterior picks it.
    from matnet.data import load_split
    images = load_split(cfg.data, "valid").batch(torch.arange(300), torch.Generator().manual_seed(0))
    resp = model.eval().component_posterior(images)
    for s in r["shown"]:
        assert (resp[s["inputs"]].argmax(1) == s["component"]).all()
    from PIL import Image
    w, h = Image.open(out).size
    groups = len(r["shown"])
    assert h == 4 * 30 + 2 and w == groups * (2 * 30 + 2) + (groups - 1) * 6  # 4 rows; 2 columns a group
    assert "component" in capsys.readouterr().out


def test_by_component_needs_a_mixture(tmp_path, capsys):
    cfg = micro_config()
    ckpt = save_checkpoint(tmp_path / "ckpt", MatNet(cfg.model, (1, 28, 28)), cfg, {"step": 0})
    with pytest.raises(SystemExit) as e:
        sample_cli.cli.run(sample_cli.main, [str(ckpt), "--by-component", "--device", "cpu",
                                             "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "mixture" in capsys.readouterr().err


def test_checkpoints_of_extended_models_round_trip(tmp_path):
    from matnet.checkpoint import load_checkpoint
    cfg = micro_config()
    cfg.model.mixture_components, cfg.model.mixture_learn_weights = 3, True
    cfg.model.ar_layers, cfg.model.ar_channels = 2, 4
    cfg.train.inference_reg_weight = 0.1
    model = MatNet(cfg.model, (1, 28, 28)).eval()
    loaded, cfg2, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", model, cfg, {"step": 1}))
    assert cfg2 == cfg
    x = binary(2)
    torch.manual_seed(4)
    a = model(x)
    torch.manual_seed(4)
    b = loaded(x)
    assert torch.equal(a.log_weight, b.log_weight) and torch.equal(a.kl_per_layer, b.kl_per_layer)
