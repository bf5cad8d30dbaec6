"""Objectives: the training loss (negative ELBO, eq. 5, with KL warm-up), the inference regularizer
(eq. 13) and the importance-weighted bound of Burda et al. used for evaluation."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import functional_call

from .model import MatNet, MatNetOutput


def elbo_loss(out: MatNetOutput, kl_weight: float = 1.0) -> torch.Tensor:
    """Mean negative free energy over the batch, in nats per image, plus any penalty the model adds
    (the mixture prior's entropy penalty). With kl_weight < 1 (warm-up) it is not a bound; the
    reported ELBO always uses weight 1."""
    loss = -(out.log_px - kl_weight * out.kl_per_layer.sum(1)).mean()
    return loss if out.penalty is None else loss + out.penalty.mean()


def inference_regularizer(model: MatNet, n: int) -> torch.Tensor:
    """Equation 13 as a loss: minus the mean free energy of n images x ~ p(x) drawn from the model,
    differentiable with respect to the inference network only.

    The draw is taken without gradient; the free energy is then computed with the generator's
    parameters detached (torch.func.functional_call), so p(x, z) is a fixed target and only q(z|x)
    moves towards it. Maximising it shrinks KL(q(z|x) || p(z|x)) on the model's own samples without
    changing the model's likelihood. Add lambda times this to the training loss. With the
    autoregressive head the draw is pixel by pixel, hence slow."""
    with torch.no_grad():
        x = model.sample(n, mean=False)
    generator = {name for name, _ in model.named_generator_parameters()}
    params = {name: p.detach() if name in generator else p for name, p in model.named_parameters()}
    out = functional_call(model, params, (x,))
    return -out.elbo.mean()


@dataclass
class BoundEstimate:
    iwae: torch.Tensor          # [B] log (1/K) sum_k p(x, z^k) / q(z^k | x)
    elbo: torch.Tensor          # [B] mean over the K samples of the analytic-KL ELBO
    kl_per_layer: torch.Tensor  # [B, L] mean over the K samples


@torch.no_grad()
def iwae_bound(model: MatNet, x: torch.Tensor, k: int, rows_per_pass: int = 2000,
               on_pass: Callable[[int], None] | None = None, **per_image: torch.Tensor) -> BoundEstimate:
    """The IWAE bound with k importance samples for every image of the batch x.

    The k samples are drawn in passes of at most `rows_per_pass` network rows (images x samples),
    so any k fits in memory; the log-weights of all passes are kept on the device in fp32 (k floats
    per image, whatever precision the networks ran in: log p(x|z) and the Gaussian log-densities are
    computed in fp32) and combined by one log-sum-exp in float64 at the end, which is exact (no
    running-average error). Nothing is read back to the host before that.
    `on_pass(n)` is told how many samples per image each pass drew, for progress bars.
    `per_image` tensors (first axis: the images of x) go to the model as keyword arguments beside
    x: `known=` masks give a conditional MatNet's bound on log p(x_u | x_k) (eq. 6).
    """
    b = x.shape[0]
    per_pass = max(1, min(k, rows_per_pass // b)) if b <= rows_per_pass else 1
    log_w, elbo_sum, kl_sum, done = [], None, None, 0
    chunks = [0] if b <= rows_per_pass else list(range(0, b, rows_per_pass))
    images = [x[s:s + rows_per_pass] for s in chunks]
    extras = [{name: t[s:s + rows_per_pass] for name, t in per_image.items()} for s in chunks]
    while done < k:
        n = min(per_pass, k - done)
        parts_w, parts_elbo, parts_kl = [], [], []
        for xs, extra in zip(images, extras):
            rep = xs.repeat_interleave(n, dim=0)               # [bs * n, ...], samples of one image adjacent
            out = model(rep, **{name: t.repeat_interleave(n, dim=0) for name, t in extra.items()})
            parts_w.append(out.log_weight.float().view(-1, n))
            parts_elbo.append(out.elbo.float().view(-1, n).sum(1))
            parts_kl.append(out.kl_per_layer.float().view(xs.shape[0], n, -1).sum(1))
        log_w.append(torch.cat(parts_w))
        elbo = torch.cat(parts_elbo)
        kl = torch.cat(parts_kl)
        elbo_sum = elbo if elbo_sum is None else elbo_sum + elbo
        kl_sum = kl if kl_sum is None else kl_sum + kl
        done += n
        if on_pass is not None:
            on_pass(n)
    log_w = torch.cat(log_w, 1).double()
    iwae = (torch.logsumexp(log_w, 1) - math.log(k)).float()
    return BoundEstimate(iwae=iwae.cpu(), elbo=(elbo_sum / k).cpu(), kl_per_layer=(kl_sum / k).cpu())


# Rows per IWAE pass on the CPU, where memory is plentiful and a pass's speed does not depend on its size.
CPU_ROWS_PER_PASS = 1000
# Largest pass tried on a GPU: beyond this the card is long full and a pass only costs more memory.
MAX_ROWS_PER_PASS = 1 << 16


@torch.no_grad()
def rows_that_fit(model: MatNet, x1: torch.Tensor, device: torch.device, amp: bool = False,
                  share: float = 0.5) -> int:
    """How many network rows an IWAE pass of this model can take on `device`: on CUDA, `share` of the
    free memory (torch.cuda.mem_get_info) divided by the peak memory of one row, measured by a probe
    pass of 256 rows of the image x1 [1, C, H, W]; on the CPU a fixed CPU_ROWS_PER_PASS."""
    from .device import autocast
    if device.type != "cuda":
        return CPU_ROWS_PER_PASS
    probe = 256
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with autocast(device, amp):
        model(x1.repeat_interleave(probe, dim=0))
    per_row = max(1, (torch.cuda.max_memory_allocated(device) - base) / probe)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(probe, min(MAX_ROWS_PER_PASS, share * free // per_row)))
