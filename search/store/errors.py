"""The one-line errors of the search commands: each says what is wrong and how to fix it, and
`search.cli.run_cli` prints it as `error: ...` (exit status 2), never as a traceback."""
from __future__ import annotations


class RunError(RuntimeError):
    """A search that cannot be started or resumed as asked (a flag, the cluster, its storage)."""


class SearchFolderError(RuntimeError):
    """A search folder that is missing or damaged; the message says which file and what to do."""


class ExportError(RuntimeError):
    """A search that cannot be exported; the message says why and what to do."""


class StudyError(RuntimeError):
    """An Optuna storage or study that cannot be used as asked."""


class UntrustedStateError(RuntimeError):
    """Tune's state in a search folder is not provably this user's."""
