"""The tracking writer: a process of its own that makes every tracking request of a search's trials
(each enabled back-end's sink: sinks.py), so that Tune's loop on the driver only hands it messages.

Why a process: at 64 trials at once, the MLflow requests (a child run per trial, metric batches,
ends) and the trials' figures (a model loaded, samples drawn, matplotlib) were about 60 % of the
driver's CPU, and a thread would still hold the driver's interpreter lock for them
(docs/benchmarks.md, the driver at scale). The driver's callback sends (name, args) messages, pickled,
down the writer's stdin (a thread of the driver's feeds the pipe, so a slow tracking server never
blocks Tune's loop); the writer applies them in order and logs results batched, at least every
FLUSH_EVERY_S. Each message travels as a frame (its length, then its pickle): the writer's reading
thread only cuts frames, and its main thread alone unpickles them and imports what the back-ends
need, because two threads importing mlflow at once can deadlock on its import cycles (seen: "deadlock
detected by _ModuleLock('mlflow.protos.databricks_pb2')"). A message that cannot be pickled, or read
back, costs a warning and only that message. It is `python -m search.tracking.writer`, not a
multiprocessing child: those import the driver's main script again, which a user's own script need
not guard.

Nothing is lost: `close()` (the search's end, an interruption included) ends the stream and waits
until the writer has applied everything in it; a wait of more than a few seconds (the figures of the
last trials of a big search: 3 minutes after 10,000 trials on 2 cores) prints a line when it starts and
one when it ends. The writer runs in a session of its own, so Ctrl-C at the terminal reaches only the
driver, which decides when to stop; a writer whose driver died sees its stdin end, writes what it has,
and ends. What was written is what a resumed search reads back.
"""
from __future__ import annotations

import logging
import os
import pickle
import queue as queues
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, TextIO

from .sinks import WHAT

logger = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0  # results wait at most this long before they are logged
# The writer's work can wait and the trials' cannot: where they share a machine (a laptop, a head node
# that also trains) the writer yields the CPU to them. It catches up when they leave it a moment, and
# `close()` still waits for all of it.
NICENESS = 10
FRAME = struct.Struct("<Q")  # a message's length in bytes, before its pickle
# A close() that waits longer than this says so (a search of thousands of trials can leave minutes of
# figures to draw: docs/benchmarks.md), then says when the wait is over.
NOTICE_AFTER_S = 5.0


# The writers this process started and has not closed. A search that a fault stopped (tune/faults.py)
# leaves Tune's loop without Tune ending its callbacks, and a resumed search's callback is Tune's own
# copy: the tracker closes them all this way before it ends the runs (mlflow_tracker.close).
_OPEN: "weakref.WeakSet[TrackingWriter]" = weakref.WeakSet()


def close_open() -> None:
    """Close every writer still open in this process: what was sent to it is written first."""
    for writer in list(_OPEN):
        writer.close()


class TrackingWriter:
    """The driver's handle on the writer process (started on first use)."""

    def __init__(self, sinks: list[tuple[str, str, dict[str, Any]]], space: Any, search_name: str):
        """sinks: (label, "module:Class", its keyword arguments) of each back-end's sink (sinks.py)."""
        self._args = (sinks, space, search_name)
        self.label = " and ".join(label for label, _, _ in sinks)  # the back-ends, as messages name them
        self._process: subprocess.Popen | None = None
        self._outbox: queues.SimpleQueue = queues.SimpleQueue()
        self._feeder: threading.Thread | None = None
        self._warned = False
        self.cpu_seconds = 0.0  # the writer's CPU time, summed over the processes it ran as

    def send(self, name: str, *args: Any) -> None:
        if self._process is None:
            self._start()
        if self._process.poll() is not None:
            if not self._warned:
                logger.warning("%s: the tracking writer stopped (exit code %s); trials are no longer logged "
                               "there. The search goes on; its results are in trials.json", self.label,
                               self._process.returncode)
                self._warned = True
            return
        self._outbox.put((name, args))

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # where the search package is, whatever the cwd
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self._process = subprocess.Popen([sys.executable, "-m", "search.tracking.writer"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=env, start_new_session=True)
        self._outbox.put(("open", self._args))
        self._feeder = threading.Thread(target=self._feed, name="tracking-writer-feed", daemon=True)
        self._feeder.start()
        _OPEN.add(self)

    def _feed(self) -> None:
        """Pickle what the callback sends down the writer's stdin, in order, one frame each; None ends
        the stream. A message is pickled whole before any byte of it is written: one that cannot be
        pickled is dropped (with a warning) and never leaves half a frame in the pipe."""
        pipe = self._process.stdin
        try:
            while (message := self._outbox.get()) is not None:
                try:
                    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as e:  # noqa: BLE001 - what the callback sent; the others still go
                    logger.warning("%s: could not %s: it cannot be pickled for the tracking writer (%s)",
                                   self.label, _what(message), str(e).splitlines()[0] if str(e) else type(e).__name__)
                    continue
                pipe.write(FRAME.pack(len(data)) + data)
                if self._outbox.empty():
                    pipe.flush()
        except OSError:
            return  # the writer is gone (a broken pipe): send() says so
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def close(self, notice_after_s: float = NOTICE_AFTER_S, stream: TextIO | None = None) -> None:
        """Wait until everything sent has been written; the process ends. A wait longer than
        `notice_after_s` is announced on `stream` (stdout), and its end too."""
        if self._process is None:
            return
        started, out_stream, said = time.monotonic(), stream or sys.stdout, []

        def waiting() -> None:
            said.append(True)
            _say(out_stream, f"{self.label}: logging the trials' last figures and metrics ...")
        notice = threading.Timer(notice_after_s, waiting)
        notice.daemon = True
        notice.start()
        try:
            self._outbox.put(None)
            self._feeder.join()
            out = self._process.stdout.read()
            self._process.wait()
            self._process.stdout.close()
        finally:
            notice.cancel()
        notice.join()
        if said:
            from ..cli import clock
            # "done", not "logged": a tracking server gone for good (trial_runs.py) got none of them
            _say(out_stream, f"{self.label}: done in {clock(time.monotonic() - started)}")
        try:
            self.cpu_seconds += float(out.decode().split()[-1])
        except (IndexError, ValueError):
            pass
        self._process = self._feeder = None
        _OPEN.discard(self)


def serve() -> int:
    """The writer's loop: apply each message from stdin to every back-end's sink; flush results every
    FLUSH_EVERY_S; at the end of the stream, write what waits and print this process's CPU seconds."""
    try:
        os.nice(NICENESS)
    except (AttributeError, OSError):  # not on this system: the writer runs at the driver's priority
        pass
    inbox: queues.SimpleQueue = queues.SimpleQueue()
    stream = sys.stdin.buffer

    def read() -> None:  # a thread: the loop below flushes on time even while no message comes
        try:
            while len(head := stream.read(FRAME.size)) == FRAME.size:
                (size,) = FRAME.unpack(head)
                data = stream.read(size)
                if len(data) != size:
                    break
                inbox.put(data)
        except OSError:
            pass
        inbox.put(None)  # the end of the stream, a cut one included: write what waits and end
    threading.Thread(target=read, daemon=True).start()
    sinks, flushed = None, time.monotonic()
    while True:
        try:
            message = inbox.get(timeout=FLUSH_EVERY_S)
        except queues.Empty:
            message = ("", ())
        if message is None:
            break
        if isinstance(message, bytes):
            try:
                message = pickle.loads(message)
            except Exception as e:  # noqa: BLE001 - one message lost, not the others
                logger.warning("tracking: the tracking writer could not read a message (%s); it is not logged",
                               str(e).splitlines()[0] if str(e) else type(e).__name__)
                message = ("", ())
        name, args = message
        if name == "open":
            from .sinks import Sinks
            sinks = Sinks(*args)
        elif name and sinks is not None:
            sinks.apply(name, args)
        if sinks is not None:
            sinks.collect()  # the figures the painters have drawn, logged
            if time.monotonic() - flushed >= FLUSH_EVERY_S:
                sinks.flush()
                flushed = time.monotonic()
    if sinks is not None:
        sinks.close()
    cpu = os.times()  # the painters' CPU too (children, ended and waited for by collect)
    try:
        print(cpu.user + cpu.system + cpu.children_user + cpu.children_system, flush=True)
    except BrokenPipeError:  # the driver is gone (killed) and will not read it; what it sent is written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
    return 0


def _say(stream: TextIO, line: str) -> None:
    """A line of its own, also where the search's status line is being redrawn in place (progress.py)."""
    stream.write(("\r\033[K" if stream.isatty() else "") + line + "\n")
    stream.flush()


def _what(message: tuple) -> str:
    """`log a result of trial t1`, for a warning."""
    name, args = message
    return f"{WHAT.get(name, name)} trial {args[0]}" if name in WHAT and args else f"send {name!r}"


if __name__ == "__main__":
    sys.exit(serve())
