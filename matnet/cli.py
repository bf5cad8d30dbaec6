"""What every command-line entry point shares: one-line errors instead of tracebacks."""
from __future__ import annotations

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
