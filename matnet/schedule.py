"""What changes with the training step: the learning rate (halvings and the warm-up), the KL weight's
warm-up, and the seeds every random draw of a step derives from (so a resumed run repeats exactly
what the uninterrupted run would have done)."""
from __future__ import annotations

import torch

from .config import Config


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2 ** 63)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed((seed * 7_919 + epoch) % (2 ** 63))
    return torch.randperm(n, generator=g)


def learning_rate(cfg: Config, epoch: int) -> float:
    halvings = sum(1 for e in cfg.train.lr_halve_epochs if epoch >= e)
    return cfg.train.lr * 0.5 ** halvings


# The shortest warm-up a run of few steps gets. Below it, Adam's second-moment estimate rests on a
# handful of gradients when the full rate arrives, and the paper's models blow up: mnist-quadrants
# warmed up over 4 steps skipped 27 of its first 49 updates (non-finite) and ended with a NaN KL;
# over 10 steps, no update of 7 runs of 60 steps (seeds 0-6, docs/training.md).
MIN_WARMUP_STEPS = 10


def warmup_steps(cfg: Config, total_steps: int | None = None) -> int:
    """Steps of the learning-rate warm-up: train.lr_warmup_steps, or for -1 the span over which Adam's
    second-moment estimate averages, 2 / (1 - beta2) (Ma & Yarats 2021), but at most a tenth of a
    run of `total_steps` (and never under MIN_WARMUP_STEPS): a search's short trials (the
    quickstart's train 120 steps) would otherwise never reach their rate, and ASHA would rank them at
    a fraction of it. `total_steps` is the step budget (budget.py), also for a run with a time limit:
    the warm-up must not depend on how fast the machine is. (validate.py refuses values under -1.)"""
    n = cfg.train.lr_warmup_steps
    if n != -1:
        return n
    full = round(2.0 / max(1.0 - cfg.train.betas[1], 1e-6))
    return full if total_steps is None else min(full, max(MIN_WARMUP_STEPS, total_steps // 10))


def warmup_factor(step: int, warmup: int) -> float:
    """The linear warm-up's factor at `step` of a warm-up of `warmup` steps."""
    return 1.0 if warmup <= 0 else min(1.0, (step + 1) / warmup)


def learning_rate_at(cfg: Config, step: int, steps_per_epoch: int, total_steps: int | None = None,
                     warmup: int | None = None) -> float:
    """The rate of step `step` of a run of `total_steps`: the epoch's (halvings) times the linear warm-up
    (of `warmup` steps when the run fixed it, else warmup_steps(cfg, total_steps))."""
    w = warmup_steps(cfg, total_steps) if warmup is None else warmup
    return learning_rate(cfg, step // steps_per_epoch) * warmup_factor(step, w)


def kl_weight(cfg: Config, step: int) -> float:
    """KL warm-up: linear from 0 to 1 over kl_warmup_steps."""
    w = cfg.train.kl_warmup_steps
    return 1.0 if w <= 0 else min(1.0, (step + 1) / w)
