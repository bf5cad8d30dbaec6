"""The process a search runs in: its Ray (started, sized and shut down around the search, with the
libraries' environment switches it needs) and its signals (SIGTERM stops it as Ctrl-C does)."""
from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Iterator

from ..space import Space
from .cluster import init_ray


@contextlib.contextmanager
def ray_session(address: str | None, space: Space, num_gpus: int | None, seconds: dict[str, float]) -> Iterator[None]:
    started = time.monotonic()
    init_ray(address, space, num_gpus)
    seconds["ray_init"] = time.monotonic() - started
    # Tune warns about frequent experiment snapshots, which keeping the best checkpoints forces.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        yield
    finally:
        import ray
        ray.shutdown()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler, `kill`) stops the search like Ctrl-C: Tune saves its state, so --resume works."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(os.getpid(), signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
