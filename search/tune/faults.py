"""Faults a search meets, each told as one line (the trial or the folder, the probable cause, what
happens next), while the tracebacks stay where Tune writes them: the trial's error.txt.

| fault                                  | seen from                                   | what happens              |
| -------------------------------------- | ------------------------------------------- | ------------------------- |
| a trial raised                         | its exception, as Tune recorded it          | retried from its last     |
| its worker process died (kill -9, the  | Ray's ActorDiedError: "worker process has   | checkpoint while          |
| kernel's OOM killer, a crash)          | died"                                       | experiment.max_failures   |
| Ray's memory monitor killed it         | "running low on memory"                     | allows, then it ends as   |
| its node was lost                      | "node has died" / NodeDiedError, Ray marks  | an error (tune/progress)  |
|                                        | the node of its last report dead            |                           |
| its worker stopped answering           | ActorUnavailableError (a node just lost)    |                           |
| the search folder's disk full, over    | the room left under it, watched between     | the search stops at once; |
| quota or read-only                     | Tune's steps; ENOSPC, EDQUOT, EROFS anywhere | --resume after the fix    |

A disk that fills up stops the whole search, before the disk is full: Tune overwrites its state files
in place, and one cut short cannot be resumed (search/store/disk.py). `RoomWatch` raises
`SearchStopped` from Tune's loop; Tune then ends its trials without saving again, so what is on disk
is the state of its last save, which `--resume` continues, as after a driver that was killed.
"""
from __future__ import annotations

import errno
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ray.tune import Callback

from ..store import storage
from ..store.disk import REFUSALS, Room, folder_bytes, refused_in_text, refused_write, room, size_text
from ..store.folder import SearchFolder
from ..store.provenance import stamps

# A search stops when less than this is left on the disk of its folder (or of the driver's scratch
# space, where Tune stages its state), or less than what it could write before the next look: its
# state twice, and a checkpoint of the largest size seen from every trial that may be writing one.
MIN_FREE_BYTES = 64_000_000
LOOK_EVERY_S = 0.5
STATE_SIZE_EVERY_S = 30.0  # Tune's state grows with the trials; listing the folder costs one entry per trial


@dataclass(frozen=True)
class Failure:
    kind: str   # "disk", "worker", "memory", "node" or "raised"
    cause: str  # what a person is told: "its worker process died (...)"


def last_failure_text(error_file: Optional[str]) -> str:
    """The last failure Tune recorded in a trial's error.txt (it appends one block per failure)."""
    try:
        text = Path(error_file).read_text() if error_file else ""
    except OSError:
        return ""
    return text.rsplit("Failure # ", 1)[-1]


def node_gone(node_id: Optional[str]) -> bool:
    """Whether Ray has marked the node `node_id` (a trial's last report names it) dead."""
    if not node_id:
        return False
    try:
        import ray
        return any(n.get("NodeID") == node_id and not n.get("Alive", True) for n in ray.nodes())
    except Exception:  # noqa: BLE001 - no Ray to ask (a unit test, a driver shutting down): not known
        return False


def describe(text: str, node_lost: bool = False) -> Failure:
    """What a trial's failure (its text, as Tune recorded it) most likely was; `node_lost` when Ray
    says the node of its last report is dead."""
    refused = refused_in_text(text)
    if refused is not None:
        return Failure("disk", f"its storage refused a write ({REFUSALS[refused]})")
    if "running low on memory" in text or "OutOfMemoryError" in text:
        return Failure("memory", "Ray's memory monitor killed it (the node ran low on memory)")
    if node_lost or "node has died" in text or "NodeDiedError" in text or "node died" in text:
        return Failure("node", "its node was lost (it stopped, or stopped answering)")
    if "ActorUnavailableError" in text or "actor is temporarily unavailable" in text:
        # The connection to the worker closed before Ray learnt why: a node that was just lost (Ray
        # marks it dead only after its health checks fail), or a worker cut off from the driver.
        return Failure("node", "its worker stopped answering (the connection to it closed: its node lost, or its "
                               "process cut off)")
    if "worker process has died" in text or "died unexpectedly" in text or "WorkerCrashedError" in text:
        return Failure("worker", "its worker process died (killed: the kernel's OOM killer, a signal, or a crash)")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "an error"
    return Failure("raised", f"it raised {last[:160]}")


class SearchStopped(Exception):
    """A fault the search cannot go on through: `reason` says what and what to do, in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def stopped_by(error: BaseException) -> Optional[SearchStopped]:
    """The SearchStopped in `error` or its causes (Tune may wrap what a callback raised)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, SearchStopped):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def stop_if_refused(path: str, error: OSError) -> None:
    """SearchStopped when `error` is the disk under `path` refusing a write (full, over quota,
    read-only): the search cannot go on without writing there."""
    code = refused_write(error)
    if code is None:
        return
    if code == errno.EROFS:
        raise SearchStopped(f"the file system of {path} is read-only; make it writable (mount -o remount,rw), then "
                            f"resume")
    left = room(path)
    free = f" ({size_text(left.free)} left)" if left is not None else ""
    raise SearchStopped(f"the disk of {path} refused a write: {REFUSALS[code]}{free}; free space there, then resume")


class RoomWatch(Callback):
    """Stops the search (SearchStopped) when the disk of its folder, or of the driver's scratch space,
    is nearly full or read-only, or when a trial failed because its storage refused a write."""

    def __init__(self, folder: SearchFolder, max_concurrent: int):
        self.folder = folder
        self.max_concurrent = max_concurrent
        self.largest_checkpoint = 0
        self.state_bytes = 0
        self._looked_at = self._sized_at = -math.inf

    def get_state(self) -> None:
        return None  # nothing to keep: it looks again after a resume

    def places(self) -> list[str]:
        """The local folders whose disks the search writes to: its folder and the scratch space."""
        return [p for p in (self.folder.path, tempfile.gettempdir()) if not storage.is_uri(p)]

    def needed(self, running: int) -> int:
        now = time.monotonic()
        if now - self._sized_at >= STATE_SIZE_EVERY_S and not storage.is_uri(self.folder.path):
            self.state_bytes = sum(size for _, size in stamps(self.folder).values())
            self._sized_at = now
        return max(MIN_FREE_BYTES, 2 * self.state_bytes + max(1, running) * self.largest_checkpoint)

    def check(self, running: int) -> None:
        seen: set[int] = set()
        for place in self.places():
            left = room(place)
            if left is None:
                continue
            if left.device in seen:
                continue
            seen.add(left.device)
            problem = self.problem(left, self.needed(running))
            if problem:
                raise SearchStopped(problem)

    def problem(self, left: Room, needed: int) -> str:
        if left.read_only:
            return (f"the file system of {left.path} is read-only; make it writable (mount -o remount,rw), then "
                    f"resume")
        if left.free < needed:
            return (f"the disk of {left.path} has {size_text(left.free)} left, less than the {size_text(needed)} "
                    f"the search needs to save safely; free space there, then resume")
        return ""

    # ---- Tune hooks ------------------------------------------------------------------------------
    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._looked_at < LOOK_EVERY_S:
            return
        self._looked_at = now
        self.check(min(self.max_concurrent or len(trials), sum(1 for t in trials if t.status == "RUNNING")))

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        if not storage.is_uri(checkpoint.path):
            self.largest_checkpoint = max(self.largest_checkpoint, folder_bytes(checkpoint.path))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._stop_if_refused(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._stop_if_refused(trial)

    def _stop_if_refused(self, trial: Any) -> None:
        failure = describe(last_failure_text(trial.error_file))
        if failure.kind == "disk":
            self._looked_at = -math.inf
            self.check(1)  # the folder's own disk: say how full it is
            raise SearchStopped(f"trial {trial.trial_id}: {failure.cause}; make room where the search writes, "
                                f"then resume")
