import math

import torch

from matnet import distributions as D


def test_gaussian_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mq, lq = torch.randn(3, 5), torch.randn(3, 5) * 0.5
    mp, lp = torch.randn(3, 5), torch.randn(3, 5) * 0.5
    analytic = D.gaussian_kl(mq, lq, mp, lp)
    n = 200_000
    z = mq + torch.exp(0.5 * lq) * torch.randn(n, 3, 5)
    mc = (D.gaussian_log_prob(z.view(-1, 5), mq.repeat(n, 1), lq.repeat(n, 1))
          - D.gaussian_log_prob(z.view(-1, 5), mp.repeat(n, 1), lp.repeat(n, 1))).view(n, 3).mean(0)
    assert torch.allclose(analytic, mc, atol=0.03), (analytic, mc)
    assert (analytic >= 0).all()
    assert torch.allclose(D.gaussian_kl(mq, lq, mq, lq), torch.zeros(3), atol=1e-6)


def test_gaussian_log_prob_matches_torch():
    m, lv, z = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 6)
    ref = torch.distributions.Normal(m, torch.exp(0.5 * lv)).log_prob(z).sum(1)
    assert torch.allclose(D.gaussian_log_prob(z, m, lv), ref, atol=1e-5)


def test_discretized_logistic_sums_to_one_over_256_values():
    # One pixel, many (mean, scale) settings, including very sharp and very flat ones and means
    # at and beyond the edges.
    means = torch.tensor([-1.2, -1.0, -0.5, 0.0, 0.3, 0.999, 1.0, 1.5])
    log_scales = torch.tensor([-7.0, -5.0, -3.0, -2.0, -1.0, 0.0, 1.0])
    mm, ss = torch.meshgrid(means, log_scales, indexing="ij")
    mm, ss = mm.reshape(-1), ss.reshape(-1)
    n = mm.numel()
    values = torch.arange(256.0)
    params = torch.stack([mm, ss], 1).view(n, 2, 1, 1).repeat_interleave(256, 0)  # [n*256, 2, 1, 1]
    x = values.repeat(n).view(-1, 1, 1, 1)
    lp = D.discretized_logistic_log_prob(params, x).view(n, 256)
    total = torch.logsumexp(lp.double(), 1).exp()
    assert torch.allclose(total, torch.ones(n, dtype=torch.float64), atol=2e-3), total
    assert torch.isfinite(lp).all()


def test_discretized_logistic_peaks_at_its_mean():
    params = torch.tensor([0.0, -4.0]).view(1, 2, 1, 1).repeat(256, 1, 1, 1)
    lp = D.discretized_logistic_log_prob(params, torch.arange(256.0).view(-1, 1, 1, 1))
    assert lp.argmax().item() in (127, 128)


def test_bernoulli_log_prob():
    logits = torch.tensor([[0.0, 2.0]])
    x = torch.tensor([[1.0, 0.0]])
    expected = math.log(0.5) + math.log(1 - 1 / (1 + math.exp(-2.0)))
    assert abs(D.bernoulli_log_prob(logits, x).item() - expected) < 1e-5


def test_gaussian_dequantized_is_a_discrete_bound():
    # For a sharp Gaussian centred on a pixel's bin, the dequantised bound approaches log 1 = 0 but
    # never exceeds the discrete probability it bounds (<= 0 per pixel).
    x = torch.full((1, 1, 1, 1), 100.0)
    mean = (x + 0.5) / 256
    for log_scale in (-9.0, -6.0, -3.0):
        params = torch.cat([mean, torch.full_like(mean, log_scale)], 1)
        lp = torch.stack([D.gaussian_dequantized_log_prob(params, x) for _ in range(200)]).mean()
        assert lp.item() <= 1e-6
