"""The tracking writer's side of every back-end (writer.py): one `TrialSink` per enabled back-end
(MLflow's child runs: trial_runs.py; TensorBoard's event files: trial_events.py), fed the same
messages by `Sinks`, which also has each finished trial's figures drawn once for all of them.

A sink's methods, called by name with the callback's message (callback.py):

    start(trial_id, drawn)                        a trial started (or restarted after a resume)
    recover(trial_id, drawn, failures)            it restarts from its checkpoint after a crash
    result(trial_id, drawn, iteration, step, ts, metrics)   one result's numbers (not twice)
    exploit(trial_id, drawn, text)                a PBT exploitation
    finish(trial_id, drawn, outcome, step, ts, finals, tags)   its last numbers and outcome
    end(trial_id, outcome, files)                 its figures ([(path, folder)]) and its end
    flush(trial_id=None)                          write what waits
    close()                                       the writer's end

Each back-end's failure (a tracking server gone, a full disk) costs a warning naming the back-end,
never the other back-end's logging or the search.
"""
from __future__ import annotations

import importlib
import logging
from collections import defaultdict
from typing import Any

from ..store.keys import kl_per_layer
from ..store.outcome import Outcome
from .painters import Painters, workers

logger = logging.getLogger(__name__)

# What each message does, for a warning when a back-end refuses it.
WHAT = {"start": "start the run of", "recover": "record the restart of", "result": "log a result of",
        "exploit": "tag an exploitation of", "finish": "finish the run of", "end": "log the figures of"}


class TrialSink:
    """What every back-end's trial writer shares: its name in messages, the sample images its figures
    have, and `safely`, which turns a failure into one warning."""

    label = "tracking"     # the back-end's name in a warning
    sample_images = 0      # images in a finished trial's sample grid (its section's sample_images)
    gone = False           # the back-end can no longer be written to: nothing more is sent to it

    def safely(self, what: str, fn, *args: Any) -> Any:
        if self.gone:
            return None
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - tracking is best effort for the search itself
            if not self.given_up(e):
                logger.warning("%s: could not %s: %s", self.label, what,
                               str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None

    def given_up(self, error: BaseException) -> bool:
        """Whether `error` means the back-end is gone for good (then said here, once, and `gone` set)."""
        return False

    def flush(self, trial_id: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def open_sink(label: str, target: str, kwargs: dict[str, Any], space: Any, search_name: str) -> TrialSink | None:
    """The sink `target` ("module:Class") names; None, and one warning, when it cannot be opened."""
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)(space=space, search_name=search_name, **kwargs)
    except Exception as e:  # noqa: BLE001 - the search goes on without this back-end
        logger.warning("%s: could not reach the search's runs (%s); trials are not logged there. The search goes "
                       "on; its results are in trials.json", label, str(e).splitlines()[0] if str(e) else
                       type(e).__name__)
        return None


class Sinks:
    """Every enabled back-end's sink, and the painters (painters.py) that draw a finished trial's
    figures once for all the sinks that want the same number of sample images."""

    def __init__(self, specs: list[tuple[str, str, dict[str, Any]]], space: Any, search_name: str):
        self.sinks = [s for s in (open_sink(*spec, space, search_name) for spec in specs) if s is not None]
        self.painters = Painters(workers())

    def apply(self, name: str, args: tuple) -> None:
        if name == "finish":
            self._finish(*args)
            return
        for sink in self.sinks:
            sink.safely(f"{WHAT[name]} trial {args[0]}", getattr(sink, name), *args)

    def _finish(self, trial_id: str, drawn: dict[str, Any], outcome: str, step: int, ts: int,
                finals: dict[str, float], tags: dict[str, str], checkpoint: Any, last: dict[str, Any],
                title: str) -> None:
        """The last numbers and tags now; the figures once drawn, then each sink ends the trial's run
        (a run shown finished has its figures)."""
        for sink in self.sinks:
            sink.safely(f"finish the run of trial {trial_id}", sink.finish, trial_id, drawn, outcome, step, ts,
                        finals, tags)
        if checkpoint is None:
            for sink in self.sinks:
                sink.safely(f"finish the run of trial {trial_id}", sink.end, trial_id, outcome, [])
            return
        # diverged: the last good checkpoint's own KL, not the result's
        kl = None if Outcome(outcome) is Outcome.DIVERGED else kl_per_layer(last)
        by_images: dict[int, list[TrialSink]] = defaultdict(list)
        for sink in self.sinks:
            by_images[sink.sample_images].append(sink)
        for images, group in by_images.items():
            def drawn_for(files: list[tuple[str, str]] | None, error: BaseException | None,
                          group: list[TrialSink] = group) -> None:
                for sink in group:
                    if error is not None:
                        logger.warning("%s: could not log the figures of trial %s: %s", sink.label, trial_id,
                                       str(error).splitlines()[0] if str(error) else type(error).__name__)
                    sink.safely(f"log the figures of trial {trial_id}", sink.end, trial_id, outcome, files or [])
            self.painters.submit(drawn_for, checkpoint, images, title, kl)

    def collect(self, wait: bool = False) -> None:
        """Hand the drawn figures to the sinks (all of them, waiting, when `wait`: the writer's end)."""
        self.painters.collect(wait)
        if wait:
            self.painters.drain()

    def flush(self) -> None:
        for sink in self.sinks:
            sink.safely("log the trials' results", sink.flush)

    def close(self) -> None:
        self.flush()
        self.collect(wait=True)
        for sink in self.sinks:
            sink.safely("close its files", sink.close)
