"""Room to write: how much space the file system under a search folder has left, whether it takes
writes at all, and whether an error is that file system refusing a write (full, over quota,
read-only).

A search writes into one folder for hours: checkpoints, Ray Tune's state, its ledger and study. A
write that meets a full disk is cut short where it stands, and Tune overwrites its state files in
place, so a state file cut short is a search that can no longer resume. So a search stops while its
disk still has room for its last state (search/tune/faults.py watches it), as PostgreSQL stops
taking writes rather than tear what it wrote. Object stores (a URI) have no such limit: no room to
watch there.
"""
from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .storage import is_uri

# The errors of a file system that refuses a write, by errno, as a person would say them.
REFUSALS = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system"}
# The same, as they read in a traceback's text (Ray hands a trial's exception back as text too).
_TEXT = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
         errno.EROFS: "Read-only file system"}
_ERRNO = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)


@dataclass(frozen=True)
class Room:
    path: str        # the folder asked about (or its nearest existing parent)
    free: int        # bytes an unprivileged writer may still use
    read_only: bool  # mounted read-only
    device: int = 0  # which file system (st_dev): two places on one disk are one room


def room(path: str) -> Optional[Room]:
    """The room left under `path` (a local folder, created or not yet), or None for a URI."""
    if is_uri(path):
        return None
    where = Path(path).resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    st = os.statvfs(where)
    return Room(str(where), st.f_bavail * st.f_frsize, bool(st.f_flag & os.ST_RDONLY), os.stat(where).st_dev)


def refused_write(error: BaseException) -> Optional[int]:
    """The errno (one of REFUSALS) of a file system refusing a write somewhere in `error`, its
    causes and the exceptions it was raised while handling; None when it is something else."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError):
            code = e.errno if e.errno in REFUSALS else refused_in_text(str(e))
            if code is not None:
                return code
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None)]  # RayTaskError keeps the trial's as .cause
    return None


def refused_in_text(text: str) -> Optional[int]:
    """The same, read from an error's text (a traceback, Tune's error.txt)."""
    for match in _ERRNO.finditer(text):
        if int(match.group(1)) in REFUSALS:
            return int(match.group(1))
    return next((code for code, words in _TEXT.items() if words in text), None)


def size_text(n: float) -> str:
    """Bytes as a person reads them: 812 KB, 63.9 MB, 1.2 GB."""
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.1f} {unit}" if unit == "MB" else f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def folder_bytes(path: str) -> int:
    """The bytes of the files under a local folder (0 when it is gone)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
