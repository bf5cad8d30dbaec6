"""What a published figure records beside it: the date, the commit, the machine and the command that
made it. Every benchmark's JSON carries these, and the docs' tables of figures are generated from
that JSON (search/bench/doc_tables.py), so a figure has one owner."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def git_revision() -> str | None:
    """The checkout's commit (None outside a git checkout): written into checkpoints and figures.
    Nothing heavy is imported here, so a benchmark's driver that measures its own memory can call it."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.system()}"


def stamp(prog: str, argv: list[str] | None = None) -> dict[str, Any]:
    """{date, commit, machine, command} of a figure made now by `prog` with `argv` (default: sys.argv's)."""
    args = sys.argv[1:] if argv is None else argv
    return {"date": time.strftime("%Y-%m-%d"), "commit": git_revision(), "machine": machine(),
            "command": " ".join([prog, *args])}
