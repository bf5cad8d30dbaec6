"""The Tune callback that signs Tune's state files each time Tune has saved them (provenance.py).

Tune saves its state at the end of a controller step, just before `on_step_end`, and a last time
(waiting for the upload) before `on_experiment_end`. A local folder is re-signed whenever a state
file changed (a stat per step); an object store only at the end, as its uploads run in the
background until Tune's last save (a driver killed before then leaves the last state unsigned:
resume it with --trust-state).
"""
from __future__ import annotations

from typing import Any

from ray.tune import Callback

from . import storage
from .folder import SearchFolder
from .provenance import sign, stamps


class StateSigner(Callback):
    def __init__(self, folder: SearchFolder):
        self.folder = folder
        self._seen: dict[str, tuple[int, int]] = {}

    def get_state(self) -> None:
        return None  # stateless: the signatures are in the folder

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if storage.is_uri(self.folder.path):
            return
        now = stamps(self.folder)
        if now != self._seen:
            sign(self.folder)
            self._seen = now

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        sign(self.folder)
        if not storage.is_uri(self.folder.path):
            self._seen = stamps(self.folder)
