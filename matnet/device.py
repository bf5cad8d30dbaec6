"""Where a model runs: the device a config or flag names, and the precision it computes in there."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .config import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when a GPU is visible, else the CPU), `cpu`, `cuda` or `cuda:N`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is visible; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                          f"numbered from 0; use cuda:0 (or auto)")
    return device


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA (the likelihoods and KLs are computed in fp32 regardless)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Draw from torch's global generators seeded with `seed` inside the block, and give the caller's
    generators back untouched afterwards (an evaluation must not change what a training run draws
    next). CUDA's generator is forked too when the work runs there."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
