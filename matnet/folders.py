"""What a folder is, told by the files in it: a checkpoint, a training run, a search.

  checkpoint  model.safetensors + config.json + meta.json [+ train_state.pt]: written
              whole and swapped in by checkpoint.save_checkpoint, so nothing else may live in it
  run         what matnet.train writes into --out: config.json, metrics.jsonl, kl_per_layer.png and a
              checkpoint/ folder (.checkpoint.old while a save is being swapped in)
  search      (and any other kind a program registers, below) what search.run writes into STORAGE/NAME;
              the search platform tells its folders apart itself (search/store/tune_files.py)

A command uses these to refuse what would overwrite something it did not write (training into a
checkpoint, a figure written over a run's metrics) and to say what a folder is when the wrong one is
passed ("a run folder: its checkpoint is RUN/checkpoint").
"""
from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import CONFIG, META, WEIGHTS

# The names matnet.train writes in a run folder.
RUN_CONFIG = "config.json"
RUN_METRICS = "metrics.jsonl"
RUN_PLOT = "kl_per_layer.png"
RUN_CHECKPOINT = "checkpoint"
RUN_FILES = (RUN_CONFIG, RUN_METRICS, RUN_PLOT, RUN_CHECKPOINT, f".{RUN_CHECKPOINT}.old")

# Folders that other programs write (a search's, by search.run) are told apart by those programs, through
# an entry point of this group: a function of a path -> (its kind, where its checkpoint is) or None. So
# the model library names none of their files, and refuses to train into one or read it as a checkpoint.
KINDS_GROUP = "matnet.folder_kinds"


def foreign(path: str | Path) -> tuple[str, str] | None:
    """(kind, where its checkpoint is) of a folder another installed program says is its own; else None."""
    from importlib.metadata import entry_points
    p = Path(path)
    if not os.path.isdir(p):
        return None
    for point in entry_points(group=KINDS_GROUP):
        try:
            recognise = point.load()
        except ImportError:  # that program is not usable here: nor are its folders
            continue
        found = recognise(p)
        if found is not None:
            return found
    return None


CHECKPOINT, RUN, EMPTY, OTHER, FILE, MISSING = "checkpoint", "run", "empty", "other", "file", "missing"


def _has(folder: Path, name: str) -> bool:
    return os.path.lexists(folder / name)  # False, not an error, where the folder cannot be read


def is_checkpoint(path: str | Path) -> bool:
    """A checkpoint folder: two of its three files (weights, config.json, meta.json), so that one that
    lost a file is still known for what it is, while a folder that merely holds a config.json or a
    meta.json of some other program is not taken for one."""
    p = Path(path)
    return os.path.isdir(p) and _has(p, WEIGHTS) + _has(p, CONFIG) + _has(p, META) >= 2


def is_run(path: str | Path) -> bool:
    """A run folder: what matnet.train leaves behind, from its first evaluation on."""
    p = Path(path)
    return (os.path.isdir(p) and not is_checkpoint(p)
            and any(_has(p, n) for n in (RUN_CHECKPOINT, f".{RUN_CHECKPOINT}.old", RUN_METRICS)))


def kind(path: str | Path) -> str:
    """checkpoint | run | empty (an empty folder) | other (another folder) | file | missing, or the
    kind another program registered (search)."""
    p = Path(path)
    if not p.exists():
        return MISSING
    if not p.is_dir():
        return FILE
    if is_checkpoint(p):
        return CHECKPOINT
    found = foreign(p)
    if found is not None:
        return found[0]
    if is_run(p):
        return RUN
    return EMPTY if next(p.iterdir(), None) is None else OTHER


def enclosing_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint folder that `path` is, or is inside of (symbolic links followed); else None."""
    p = Path(path).expanduser().resolve()
    for folder in (p, *p.parents):
        if is_checkpoint(folder):
            return folder
    return None


def describe(path: str | Path) -> str:
    """What a folder passed where a checkpoint belongs is, and what to pass instead."""
    p = Path(path)
    k = kind(p)
    if k == RUN:
        return f"{p} is a training run folder, not a checkpoint; its checkpoint is {p / RUN_CHECKPOINT}"
    found = foreign(p) if k not in (CHECKPOINT, FILE, MISSING, EMPTY, OTHER) else None
    if found is not None:
        return f"{p} is a {found[0]} folder, not a checkpoint; {found[1]}"
    if k == FILE:
        return f"{p} is a file, not a checkpoint folder; pass the folder that holds {CONFIG} and {WEIGHTS}"
    return ""


def checkpoint_argument(path: str | Path) -> Path:
    """A command's CHECKPOINT argument: a run or search folder (or a file) passed instead of a checkpoint
    is told apart and named, with the path to pass instead. Reading the checkpoint checks the rest."""
    from .checkpoint import CheckpointError

    hint = describe(path)
    if hint:
        raise CheckpointError(hint)
    return Path(path)
