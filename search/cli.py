"""The search commands' entry point: matnet's one-line errors, and the search platform's own; and how
they print a duration."""
from __future__ import annotations

from typing import Callable


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's main (search.run, search.export, search.bench): a mistake in the user's input
    or files is one line `error: ...` and exit status 2, never a traceback (matnet.cli.run)."""
    from matnet import cli

    from .space import SpaceError
    from .store import errors
    from .tracking.uri import TrackingUriError
    cli.run(main, argv, (SpaceError, TrackingUriError, errors.ExportError, errors.SearchFolderError, errors.RunError,
                         errors.UntrustedStateError, errors.StudyError))


def clock(seconds: float) -> str:
    """A duration as the commands print it (the search's status line, the tracking writer): 2m05s, 1h03m."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
