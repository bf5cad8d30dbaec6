"""What every command-line entry point shares: one-line errors instead of tracebacks.

    p = cli.ArgumentParser(prog="python -m matnet.X")        # argparse's errors become ConfigError
    p.add_argument("--batch-size", type=cli.at_least(1))      # a count checked as it is parsed
    cli.run(main)                                             # user errors: `error: ...`, exit status 2
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn

from .config import ConfigError


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or files: shown as one line, exit status 2."""
    from .checkpoint import CheckpointError
    from .data import DataFileError, DatasetMissingError
    from .nonfinite import NonFiniteLossError
    return (ConfigError, CheckpointError, DatasetMissingError, DataFileError, NonFiniteLossError,
            FileNotFoundError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors (an unknown flag, a bad choice, a value that does not parse) raised as
    ConfigError, so that `run` shows them as one line like every other mistake (argparse itself prints
    a usage block; `--help` still shows it)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")


def at_least(minimum: int, meaning: str = "") -> Callable[[str], int]:
    """An argparse type: an integer >= minimum. `meaning` explains a special value, e.g. "0: all"."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}{f' ({meaning})' if meaning else ''}, "
                                             f"got {text!r}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def between(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer in [minimum, maximum]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be an integer from {minimum} to {maximum:,}, got {text!r}")
        return value
    parse.__name__ = f"integer in [{minimum}, {maximum}]"
    return parse


def seed(text: str) -> int:
    """An argparse type: a random seed torch accepts, 0 <= seed < 2**63."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"must be an integer between 0 and 2**63 - 1, got {text!r}")
    return value


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.filename is not None:
        # An I/O failure no check foresaw (a disk that fills up, a file that vanished): name the file.
        return f"{e.filename}: {e.strerror or type(e).__name__}"
    text = str(e).strip()
    if isinstance(e, FileNotFoundError) and e.filename is not None:
        return f"{e.filename}: no such file or folder"
    return text.splitlines()[0] if text else type(e).__name__


MEMORY_HINT = ("lower the batch size (--batch-size, train.batch_size), the images at once (--n, --rows) or the "
               "model's widths (model.meta_modules)")


def out_of_memory(e: BaseException) -> bool:
    """A failed allocation, on a GPU (torch.OutOfMemoryError) or the CPU (MemoryError, or the
    allocator's RuntimeError)."""
    import torch
    text = str(e)
    return (isinstance(e, (MemoryError, torch.OutOfMemoryError))
            or (isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)))


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None,
        extra: tuple[type[BaseException], ...] = (), memory_hint: str = MEMORY_HINT) -> NoReturn:
    """Run a command's main; user errors (and the `extra` kinds) become one line and exit status 2.
    Any other OSError that names a file (disk full, permission denied on a file no check could foresee)
    is one line too: it is about the machine, not a bug a traceback would help with; so is running out
    of memory, with `memory_hint`: which settings to lower."""
    try:
        code = main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - sorted below: the user's mistakes are one line, bugs are not
        mine = user_errors() + extra
        if out_of_memory(e) and not isinstance(e, mine):
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            print(f"error: out of memory ({first}); {memory_hint}", file=sys.stderr)
            sys.exit(2)
        if isinstance(e, mine) or (isinstance(e, OSError) and e.filename is not None):
            print(f"error: {_one_line(e)}", file=sys.stderr)
            sys.exit(2)
        raise
    sys.exit(code or 0)
