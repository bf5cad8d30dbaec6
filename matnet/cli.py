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


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None,
        extra: tuple[type[BaseException], ...] = ()) -> NoReturn:
    """Run a command's main; user errors (and the `extra` kinds) become one line and exit status 2.
    Any other OSError that names a file (disk full, permission denied on a file no check could foresee)
    is one line too: it is about the machine, not a bug a traceback would help with."""
    try:
        code = main(argv)
    except user_errors() + extra + (OSError,) as e:
        if isinstance(e, OSError) and not isinstance(e, user_errors() + extra) and e.filename is None:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
