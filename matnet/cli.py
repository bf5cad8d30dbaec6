"""What every command-line entry point shares: one-line errors instead of tracebacks, and the
choice of device."""
from __future__ import annotations

import sys
from typing import Callable, NoReturn

import torch

from .config import ConfigError


class NonFiniteLossError(RuntimeError):
    """Training diverged: too many updates in a row had a non-finite loss or gradient."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or files: shown as one line, exit status 2."""
    from .checkpoint import CheckpointError
    from .data import DataFileError, DatasetMissingError
    return (ConfigError, CheckpointError, DatasetMissingError, DataFileError, NonFiniteLossError,
            FileNotFoundError)


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None,
        extra: tuple[type[BaseException], ...] = ()) -> NoReturn:
    """Run a command's main; user errors (and the `extra` kinds) become one line and exit status 2."""
    try:
        code = main(argv)
    except user_errors() + extra as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is visible; use --device cpu")
    return device


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA (the likelihoods and KLs are computed in fp32 regardless)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")
