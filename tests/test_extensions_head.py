"""The local autoregressive head (section 2.3): masks, causality, windowed sampling, and the head in
a MatNet (training signal, IWAE, sampling through matnet.sample)."""
import pytest
import torch

from matnet import distributions as D
from matnet import sample as sample_cli
from matnet.checkpoint import load_checkpoint, save_checkpoint
from matnet.config import ConfigError
from matnet.sections import MetaModule, ModelConfig
from matnet.model import MatNet
from matnet.objectives import elbo_loss, iwae_bound
from matnet.pixelcnn import MaskedConv2d, PixelCNNHead
from matnet.presets import preset
from tests.helpers import micro_config

CASES = [("bernoulli", 1), ("logistic", 3), ("logistic", 1), ("gaussian", 3)]


def random_head(likelihood, colours, layers=3, channels=6):
    head = PixelCNNHead(likelihood, colours, layers, channels, 0.1)
    with torch.no_grad():  # big random weights, so that no dependence can hide behind a small number
        for p in head.parameters():
            p.normal_(0, 0.5)
    return head


def image(likelihood, colours, size, n=1):
    if likelihood == "bernoulli":
        return torch.bernoulli(torch.full((n, colours, size, size), 0.5))
    return torch.randint(0, 256, (n, colours, size, size)).float()


def test_masks_a_and_b():
    colours_in, colours_out = torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1, 1, 2, 2])
    a = MaskedConv2d(colours_in, colours_out, 3, "A").mask
    b = MaskedConv2d(colours_out, colours_out, 3, "B").mask
    for m in (a, b):
        assert (m[:, :, 2, :] == 0).all() and (m[:, :, 1, 2] == 0).all()   # nothing below or to the right
        assert (m[:, :, 0, :] == 1).all() and (m[:, :, 1, 0] == 1).all()   # everything above and left
    # Centre: A sees earlier colours only, B earlier and the same colour.
    assert a[:, :, 1, 1].tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert torch.equal(b[:, :, 1, 1], (colours_out[None, :] <= colours_out[:, None]).float())
    with pytest.raises(ValueError):
        MaskedConv2d(colours_in, colours_out, 3, "C")


@pytest.mark.parametrize("likelihood,colours", CASES)
def test_causality(likelihood, colours):
    # The prediction for channel c of pixel p has zero gradient with respect to that input and every
    # later one (later pixels in raster order; at p itself, channels c, c+1, ...), and a non-zero
    # gradient with respect to some earlier ones.
    torch.manual_seed(0)
    size = 6
    head = random_head(likelihood, colours)
    td = torch.randn(1, D.param_channels(likelihood, colours), size, size)
    x_in = D.network_input(likelihood, image(likelihood, colours, size)).requires_grad_(True)
    params = head(td, x_in)[0]                                     # [P, H, W]
    order = lambda c, i, j: (i * size + j) * colours + c           # noqa: E731  position in the AR order
    rank = torch.tensor([[[order(c, i, j) for j in range(size)] for i in range(size)] for c in range(colours)])
    for p_ch in range(params.shape[0]):
        c = p_ch % colours
        for i in range(size):
            for j in range(size):
                (g,) = torch.autograd.grad(params[p_ch, i, j], x_in, retain_graph=True)
                g = g[0].abs()
                later = rank >= order(c, i, j)
                assert (g[later] == 0).all(), f"param {p_ch} at ({i},{j}) sees later inputs"
                if order(c, i, j) > 0:
                    assert g[~later].sum() > 0, f"param {p_ch} at ({i},{j}) sees nothing"


@pytest.mark.parametrize("likelihood,colours", CASES)
def test_windowed_prediction_equals_the_whole_image(likelihood, colours):
    torch.manual_seed(1)
    head = random_head(likelihood, colours, layers=4)
    size = 11
    td = torch.randn(2, D.param_channels(likelihood, colours), size, size)
    x_in = D.network_input(likelihood, image(likelihood, colours, size, 2))
    full = head(td, x_in)
    conds = head.conditioning(td)
    for i in range(size):
        for j in range(size):
            assert torch.allclose(head.pixel_params(td, x_in, i, j, conds), full[:, :, i, j], atol=1e-5), (i, j)


@pytest.mark.parametrize("likelihood,colours", CASES)
def test_sampling_follows_the_trained_conditionals(likelihood, colours):
    # The conditional means recorded while drawing pixel by pixel are those that teacher forcing
    # (the training-time forward on the drawn image) gives: sampling and training agree.
    torch.manual_seed(2)
    head = random_head(likelihood, colours)
    td = torch.randn(3, D.param_channels(likelihood, colours), 7, 7)
    x, means = head.sample(td)
    assert x.shape == means.shape == (3, colours, 7, 7)
    if likelihood == "bernoulli":
        assert set(x.unique().tolist()) <= {0.0, 1.0}
    else:
        assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= 255
    teacher = D.mean_image(likelihood, head(td, D.network_input(likelihood, x)))
    assert torch.allclose(means, teacher, atol=1e-3)


def head_model(likelihood="bernoulli", shape=(1, 28, 28), **kw):
    meta = [MetaModule(7, 8, 1, 2), MetaModule(14, 8, 1, 2)] if shape[1] == 28 else [MetaModule(8, 8, 1, 2)]
    return MatNet(ModelConfig(likelihood=likelihood, top_latents=4, meta_modules=meta, data_width=4,
                              ar_layers=2, ar_channels=6, **kw), shape)


@pytest.mark.parametrize("likelihood,shape", [("bernoulli", (1, 28, 28)), ("logistic", (3, 16, 16))])
def test_a_matnet_with_a_head(likelihood, shape):
    model = head_model(likelihood, shape)
    x = image(likelihood, shape[0], shape[1], 4)
    out = model(x)
    assert torch.isfinite(out.elbo).all() and (out.log_px <= 0).all()
    elbo_loss(out).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing
    model.eval()
    est = iwae_bound(model, x, 20)
    assert torch.isfinite(est.iwae).all()
    assert model.sample(2).shape == (2, *shape) and model.sample(2, mean=False).shape == (2, *shape)
    assert model.sample_given(x[:2], 1).shape == (2, *shape)


def test_head_config_errors():
    with pytest.raises(ConfigError, match="ar_layers"):
        MatNet(ModelConfig(ar_layers=-1), (1, 28, 28))
    with pytest.raises(ConfigError, match="ar_channels"):
        MatNet(ModelConfig(likelihood="logistic", meta_modules=[MetaModule(8, 8, 1, 2)], ar_layers=2,
                           ar_channels=2), (3, 32, 32))


def test_preset_cifar10_conv_ar():
    cfg = preset("cifar10-conv-ar")
    assert cfg.model.ar_layers == 5 and cfg.model.likelihood == "logistic"
    plain = preset("cifar10-conv")
    cfg.model.ar_layers = 0
    assert cfg == plain  # the paper's CIFAR-10 model plus the head, nothing else


def test_matnet_sample_cli_draws_a_grid_through_the_head(tmp_path, capsys):
    cfg = micro_config()
    cfg.model.ar_layers, cfg.model.ar_channels = 2, 8
    model = MatNet(cfg.model, (1, 28, 28))
    ckpt = save_checkpoint(tmp_path / "ckpt", model, cfg, {"step": 0})
    assert load_checkpoint(ckpt)[0].ar_head is not None
    with pytest.raises(SystemExit) as e:
        sample_cli.cli.run(sample_cli.main, [str(ckpt), "--n", "4", "--out", str(tmp_path / "s.png"),
                                             "--device", "cpu"])
    assert e.value.code == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    assert "pixel by pixel" in capsys.readouterr().out
