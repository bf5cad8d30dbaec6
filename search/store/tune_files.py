"""The names of what only a search folder holds, and how a search folder is told from others.

search.run's own files are named in folder.py (search.json, best/); Ray Tune's experiment state lies at
the top of the folder: tuner.pkl, every other pickle (the searcher's, the callbacks'), and its JSON
state files, which may carry pickled entries. provenance.py signs exactly these (a resume unpickles
them). `recognise` is the model library's entry point for folders it did not write
(matnet/folders.py, `matnet.folder_kinds` in pyproject.toml): matnet.train refuses to train into a
search folder, and a command given one where a checkpoint belongs names the search's best.
"""
from __future__ import annotations

from pathlib import Path

SEARCH_INFO = "search.json"
SEARCH_BEST = "best"
TUNE_STATE = "tuner.pkl"
TUNE_JSON_STATE_PREFIXES = ("experiment_state-", "search_gen_state-", "basic-variant-state-")


def is_tune_state(name: str) -> bool:
    """A file name of Ray Tune's experiment state, as it lies at the top of a search folder."""
    return name.endswith(".pkl") or (name.endswith(".json") and name.startswith(TUNE_JSON_STATE_PREFIXES))


def recognise(path: Path) -> tuple[str, str] | None:
    """("search", where its best checkpoint is) for a local search folder (search.json, or Tune's state
    of a start that failed early); else None."""
    try:
        if (path / SEARCH_INFO).exists() or (path / TUNE_STATE).exists() or \
                any(is_tune_state(f.name) for f in path.iterdir()):
            return "search", f"its best checkpoint is {path / SEARCH_BEST}"
    except OSError:
        pass
    return None
