"""A Gaussian mixture prior over the top latents z_0, trained with the model (section 2.3).

The KL term of z_0 uses the variational approximation of equation 12 (Hershey & Olsen):

    KL(q || p) ~= -log sum_k pi_k exp(-KL(q || p_k))

For a single Gaussian q, as here, this is an upper bound on the true KL: by Jensen, for any weights
w_k, log sum_k pi_k p_k(z) >= sum_k w_k log(pi_k p_k(z) / w_k), so KL(q || p) <=
sum_k w_k (KL(q || p_k) - log pi_k + log w_k), and the best w_k (the responsibilities below) give
exactly the expression above. So the ELBO reported with a mixture prior is still a lower bound on
log p(x), only looser than with the (intractable) exact KL; tests check it against Monte Carlo.
The IWAE bound uses the exact mixture density in its importance weights,
log p(z_0) = logsumexp_k(log pi_k + log N(z_0; mu_k, var_k)), so it is as tight as without a mixture.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import distributions as D

# Component means start as draws from N(0, I): spread out like samples of the plain prior they
# replace, so that the components begin distinct and the initial KL stays moderate.
MEAN_INIT_STD = 1.0


class MixturePrior(nn.Module):
    """p(z_0) = sum_k pi_k N(z_0; mu_k, diag(exp(logvar_k))), k = 1..K."""

    def __init__(self, components: int, latents: int, learn_weights: bool = False):
        super().__init__()
        self.means = nn.Parameter(MEAN_INIT_STD * torch.randn(components, latents))
        self.logvars = nn.Parameter(torch.zeros(components, latents))
        # Uniform weights 1/K as the paper, or trainable logits.
        if learn_weights:
            self.logits = nn.Parameter(torch.zeros(components))
        else:
            self.register_buffer("logits", torch.zeros(components), persistent=False)

    @property
    def components(self) -> int:
        return self.means.shape[0]

    def log_weights(self) -> torch.Tensor:
        """log pi_k, [K]."""
        return torch.log_softmax(self.logits.float(), 0)

    def component_kls(self, mean_q: torch.Tensor, logvar_q: torch.Tensor) -> torch.Tensor:
        """KL(q || p_k) for every input and component, [B, K]."""
        b, k = mean_q.shape[0], self.components
        mq = mean_q.float().unsqueeze(1).expand(b, k, -1).reshape(b * k, -1)
        lq = logvar_q.float().unsqueeze(1).expand(b, k, -1).reshape(b * k, -1)
        mp = self.means.float().unsqueeze(0).expand(b, k, -1).reshape(b * k, -1)
        lp = self.logvars.float().unsqueeze(0).expand(b, k, -1).reshape(b * k, -1)
        return D.gaussian_kl(mq, lq, mp, lp).view(b, k)

    def kl(self, mean_q: torch.Tensor, logvar_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Equation 12 with weights pi_k, [B]; and the responsibilities, [B, K]: each input's posterior
        over components, r_k proportional to pi_k exp(-KL(q || p_k)) (the terms of the same sum)."""
        logits = self.log_weights() - self.component_kls(mean_q, logvar_q)
        return -torch.logsumexp(logits, 1), torch.softmax(logits, 1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Exact log p(z_0) = logsumexp_k(log pi_k + log N(z_0; mu_k, var_k)), [B]."""
        z = z.float()
        d = z.unsqueeze(1) - self.means.float()                                  # [B, K, D]
        lv = self.logvars.float()
        per = -0.5 * (D.LOG_2PI + lv + d ** 2 * torch.exp(-lv)).sum(2)           # [B, K]
        return torch.logsumexp(self.log_weights() + per, 1)

    def sample(self, n: int, component: torch.Tensor | None = None) -> torch.Tensor:
        """z_0 ~ p(z_0): a component by its weight (or the given ones, [n]), then its Gaussian."""
        if component is None:
            component = torch.multinomial(self.log_weights().exp(), n, replacement=True)
        component = component.to(self.means.device)
        return D.sample_gaussian(self.means[component], self.logvars[component])


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row of a [B, K] probability table."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(1)
