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


# Where `train.amp` turns bf16 autocast on. The CPU supports it too, but it is not faster there and
# configs written before bf16 became opt-in say amp=true for CPU runs that trained in fp32; tests add
# "cpu" here to reproduce bf16 numerics without a GPU.
AUTOCAST_DEVICES: tuple[str, ...] = ("cuda",)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast where AUTOCAST_DEVICES allows it (the likelihoods and KLs are computed in fp32
    regardless)."""
    on = enabled and device.type in AUTOCAST_DEVICES
    return torch.autocast(device.type if on else "cpu", dtype=torch.bfloat16, enabled=on)


def use_tf32(device: torch.device) -> None:
    """fp32 matrix products and convolutions on CUDA through TF32 tensor cores (10-bit mantissa
    products, fp32 accumulation): the default precision of training on a GPU. The KLs, likelihoods
    and importance weights are elementwise fp32 work that TF32 does not touch."""
    if device.type == "cuda":
        set_tf32(True)


def set_tf32(enabled: bool) -> bool:
    """Turn TF32 for CUDA matrix products and convolutions on or off; returns whether it was on.
    torch >= 2.9 has a new API and refuses a mix of it with the old flags, so one function owns both."""
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        was = torch.backends.cuda.matmul.fp32_precision == "tf32"
        value = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = value
        torch.backends.cudnn.conv.fp32_precision = value
        return was
    was = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    return was


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Draw from torch's global generators seeded with `seed` inside the block, and give the caller's
    generators back untouched afterwards (an evaluation must not change what a training run draws
    next). CUDA's generator is forked too when the work runs there."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
