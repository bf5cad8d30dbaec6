"""The trials' figures, drawn by a pool of processes beside the tracking writer (writer.py).

Why: a finished trial's figures (its model loaded, samples drawn, the KL bar chart and Figure 4 laid
out by matplotlib) were about two thirds of the writer's CPU, and the writer is one process: at 1,000
trials, 64 at once, it was still drawing minutes after the last trial ended (docs/benchmarks.md, the
driver at scale). Drawn by `workers` processes, they use the cores the trials leave idle while the
writer's own thread goes on with MLflow. The painters inherit the writer's niceness: the trials still
come first.

A painter only writes files into a folder; the writer logs them and only then ends the trial's run, so
a run that MLflow shows finished has its figures, as before. `drain()` (the writer's end) waits for
every figure. A painter that dies costs a warning, and the figures are then drawn in the writer itself.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Sequence

from matnet.folders import RUN_METRICS, RUN_PLOT

logger = logging.getLogger(__name__)

# Figure files with the artifact folder each goes to in the trial's run.
Drawn = list[tuple[str, str]]


def workers() -> int:
    """Painters for this machine: MATNET_FIGURE_WORKERS, else one per core up to 4 (the drawing of one
    trial takes ~0.2 s of a core: 4 painters keep up with 20 trials ending per second)."""
    raw = os.environ.get("MATNET_FIGURE_WORKERS", "")
    if raw.strip():
        try:
            return max(0, int(raw))
        except ValueError:
            logger.warning("MATNET_FIGURE_WORKERS=%r is not a whole number; using the default", raw)
    return max(1, min(4, os.cpu_count() or 1))


def draw(checkpoint: Any, out: str, sample_images: int, title: str, kl: Sequence[float] | None) -> Drawn:
    """A finished trial's figures from its Tune checkpoint, written into `out`: samples or
    imputations and the per-layer KL under figures/, its training history (metrics.jsonl) and
    Figure 4 drawn from it under training/."""
    from matnet.figures import checkpoint_figures, history_figure

    out_dir = Path(out)
    with checkpoint.as_directory() as folder:
        files = [(str(f), "figures") for f in checkpoint_figures(folder, out_dir, sample_images, title, kl)]
        history = Path(folder) / RUN_METRICS
        if history.is_file():  # copied: a checkpoint brought from remote storage is gone after this block
            (out_dir / "training").mkdir(exist_ok=True)
            files.append((str(shutil.copy2(history, out_dir / "training" / RUN_METRICS)), "training"))
            figure = history_figure(folder, out_dir / "training" / RUN_PLOT)
            if figure is not None:
                files.append((str(figure), "training"))
    return files


def _painter_starts() -> None:
    """Each painter draws with one thread: several painters share the cores, and torch's default of a
    thread per core would have them fight over each."""
    import torch
    torch.set_num_threads(1)


class Painters:
    """The pool (started on first use) and the drawings not yet handed back, in submission order."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._waiting: list[tuple[Future | None, str, Callable[[Drawn | None, BaseException | None], None], tuple]] = []

    def submit(self, done: Callable[[Drawn | None, BaseException | None], None], checkpoint: Any,
               sample_images: int, title: str, kl: Sequence[float] | None) -> None:
        """Draw a checkpoint's figures (draw()) into a fresh folder; collect() then calls `done(files,
        error)` in the writer's thread."""
        out = tempfile.mkdtemp(prefix="matnet-figures-")
        args = (checkpoint, sample_images, title, kl)
        future = None
        if self.workers > 0:
            try:
                future = self._start().submit(draw, checkpoint, out, *args[1:])
            except (BrokenProcessPool, RuntimeError, OSError) as e:
                self._broken(e)
        self._waiting.append((future, out, done, args))

    def collect(self, wait: bool = False) -> None:
        """Hand back the drawings that are ready, in the order they were asked for (all of them, waiting,
        when `wait`)."""
        while self._waiting:
            future, out, done, args = self._waiting[0]
            if future is not None and not future.done() and not wait:
                return
            self._waiting.pop(0)
            try:
                files, error = self._result(future, out, args), None
            except Exception as e:  # noqa: BLE001 - this trial's figures are lost, not the others
                files, error = None, e
            try:
                done(files, error)
            finally:
                shutil.rmtree(out, ignore_errors=True)

    def drain(self) -> None:
        """Every figure asked for, handed back; the painters end."""
        self.collect(wait=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _result(self, future: Future | None, out: str, args: tuple) -> Drawn:
        if future is not None:
            try:
                return future.result()
            except BrokenProcessPool as e:
                self._broken(e)
        return draw(args[0], out, *args[1:])  # no painter: drawn here

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: the writer has threads, and a fork would copy their locks mid-use.
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_painter_starts)
        return self._pool

    def _broken(self, e: BaseException) -> None:
        if self.workers:  # once: the drawings still waiting on the dead pool each raise it again
            logger.warning("MLflow: the figure painters stopped (%s); the tracking writer draws the figures itself",
                           str(e).splitlines()[0] if str(e) else type(e).__name__)
        self.workers = 0
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
