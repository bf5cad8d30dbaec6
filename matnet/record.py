"""What a published figure records beside it: the date, the commit, the machine and the command that
made it. Every benchmark's JSON carries these, and the docs' tables of figures are generated from
that JSON (search/bench/doc_tables.py), so a figure has one owner."""
from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

from .checkpoint import git_revision


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.system()}"


def stamp(prog: str, argv: list[str] | None = None) -> dict[str, Any]:
    """{date, commit, machine, command} of a figure made now by `prog` with `argv` (default: sys.argv's)."""
    args = sys.argv[1:] if argv is None else argv
    return {"date": time.strftime("%Y-%m-%d"), "commit": git_revision(), "machine": machine(),
            "command": " ".join([prog, *args])}
