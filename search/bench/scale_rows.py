"""The rows of `search.bench scale`: one setup run in a process of its own, its row printed, and the
rows of earlier runs kept in the same JSON file."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any


def previous_rows(path: str | None, trials: list[int], concurrent: list[int], setups: list[str],
                  keep: int = 1) -> list[dict]:
    """The rows an earlier run wrote to `path` that this run does not measure again: runs of different
    sizes (e.g. N = 1,000 on its own, later) or keeping a different number of checkpoints add up in
    one file (rows written before that option kept one)."""
    if not path or not Path(path).is_file():
        return []
    try:
        rows = json.loads(Path(path).read_text())
    except ValueError:
        from ..store.errors import RunError
        raise RunError(f"{path}: not a JSON file of search.bench scale; give another --json path") from None
    return [r for r in rows if not (r["trials"] in trials and r["concurrent"] in concurrent and r["setup"] in setups
                                    and r.get("keep_checkpoints", 1) == keep)]


def run_setup(command: list[str], timeout: float) -> tuple[str | None, str]:
    """(stdout, stderr) of one setup's process; (None, stderr) when it ran past `timeout`, after its
    process group was killed (the private Ray it started shares the driver's fate: Ray's processes
    die with it)."""
    import signal
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        return None, stderr


def print_row(r: dict[str, Any]) -> None:
    parts = ", ".join(f"{k} {v:.1f}s" for k, v in r["driver_seconds"].items())
    if "tune_snapshots" in r:  # rows of earlier runs have no count
        parts += f"; {r['tune_snapshots']} Tune snapshots"
    keep = f" K={r['keep_checkpoints']}" if r.get("keep_checkpoints", 1) != 1 else ""
    print(f"  {r['setup']:<12} N={r['trials']:<5} C={r['concurrent']:<3}{keep} wall {r['wall_s']:.1f}s "
          f"({r['wall_over_ideal']:.2f}x ideal {r['ideal_s']:.1f}s), driver {r['driver_cpu_ms_per_trial']:.0f} ms "
          f"CPU/trial, {r['results_per_s']:.0f} results/s, peak {r['peak_driver_mb']:.0f} MB, folder "
          f"{r['folder_mb']:.1f} MB; {parts}", flush=True)
