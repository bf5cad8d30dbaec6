"""The platform's Tune callbacks on the driver: the trial ledger (trials.json) and the signer of
Tune's state files.

The ledger keeps search/store/ledger.py's records up to date from Tune's hooks; the MLflow callback
(search/tracking/) reads the trials' best values from it, so it comes first in the list.

The signer signs Tune's state files each time Tune saves them (search/store/provenance.py). Tune
saves its snapshot into a local staging folder, asks every callback for its state on the way (the
signer's `get_state`, after the snapshot and the searcher's state are written), then a thread copies
the staging folder into the search folder. So the signer signs the staged copy in `get_state`, before
the copy starts, and the folder keeps the signatures of a file's last versions: a driver killed at any
moment (a lost machine, an OOM kill) leaves a folder whose state a resume trusts, unless the kill cut
Tune's copy of a file short. Until the staging folder is known (it is learnt from the first trial) and
for files Tune writes into the search folder directly (tuner.pkl), the search folder itself is signed
after the fact: a local one looked at every step (a stat per file), an object store every few seconds
(a listing; its uploads finish in the background, and each object appears whole).
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Optional

from ray.tune import Callback

from ..store import storage
from ..store.folder import SearchFolder
from ..store.keys import LINEAGE_KEY
from ..store.ledger import TrialRecord, append_records, error_line, read_records, write_records
from ..store.outcome import Outcome
from ..store.provenance import Signed, sign, stamps
from .faults import stop_if_refused


def known_stamps(folder: SearchFolder, known: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """(mtime, size) of the state files already known, in a local folder; a vanished one is left out."""
    out = {}
    for name in known:
        try:
            st = os.stat(folder.file(name))
        except FileNotFoundError:
            continue
        out[name] = (st.st_mtime_ns, st.st_size)
    return out

logger = logging.getLogger(__name__)


class TrialLedger(Callback):
    """Keeps trials.json up to date from Tune's callback hooks (on the driver). What a hook changes is
    written at the cost of the trials it changed (search/store/ledger.py: a line appended to
    trials.log), at once for a trial's start and end, at most every `min_interval_s` for its results."""

    def __init__(self, folder: SearchFolder, metric: str, mode: str, min_interval_s: float = 2.0):
        self.folder = folder
        self.metric = metric
        self.mode = mode
        self.min_interval_s = min_interval_s
        self.records: dict[str, TrialRecord] = {}
        self._changed: set[str] = set()
        self._logged = 0          # lines in trials.log since trials.json was written whole
        self._written_at = 0.0

    def setup(self, **info: Any) -> None:
        # A resumed search goes on from the ledger it wrote, not from Tune's pickled copy of this callback.
        self.records = read_records(self.folder)
        self._changed, self._logged = set(), 0
        self._write_all()

    def get_state(self) -> Optional[dict]:
        return None  # the ledger file is the state

    def _record(self, trial: Any) -> TrialRecord:
        record = self.records.get(trial.trial_id)
        if record is None:
            record = self.records[trial.trial_id] = TrialRecord(trial.trial_id, dict(trial.config))
        self._changed.add(trial.trial_id)
        return record

    def _write(self, force: bool = True) -> None:
        """Write what changed: now (`force`), or if the last write is `min_interval_s` old."""
        if not self._changed or (not force and time.monotonic() - self._written_at < self.min_interval_s):
            return
        try:
            if storage.is_uri(self.folder.path) or self._logged + len(self._changed) > 2 * max(32, len(self.records)):
                self._write_all()
            else:
                append_records(self.folder, [self.records[t] for t in sorted(self._changed)])
                self._logged += len(self._changed)
            self._changed.clear()
            self._written_at = time.monotonic()
        except OSError as e:  # a storage hiccup must not stop the search; the next write retries
            stop_if_refused(self.folder.path, e)  # a full or read-only disk does (tune/faults.py)
            logger.warning("trial ledger not written (%s): %s", self.folder.ledger, e)

    def _write_all(self) -> None:
        write_records(self.folder, self.records)
        self._logged = 0
        self._changed.clear()
        self._written_at = time.monotonic()

    # ---- Tune hooks ------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.outcome = str(Outcome.RUNNING)  # also a trial restarted after a failure or a resume
        self._write()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        record = self._record(trial)
        record.observe(result, self.metric, self.mode)
        exploited = result.get(LINEAGE_KEY)
        if isinstance(exploited, dict) and exploited not in record.lineage:
            record.lineage.append(exploited)
            self._write()
            return
        self._write(force=False)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        relative = storage.relative_to(checkpoint.path, self.folder.path)
        record = self._record(trial)
        if relative is not None and relative not in record.checkpoints:
            record.checkpoints.append(relative)
        self._write(force=False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial).end(self.metric)
        self._write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial).end(self.metric, errored=True, error=error_line(trial.error_file))
        self._write()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._write(force=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        try:
            self._write_all()
        except OSError as e:
            stop_if_refused(self.folder.path, e)
            logger.warning("trial ledger not written (%s): %s", self.folder.ledger, e)


class StateSigner(Callback):
    URI_EVERY_S = 10.0
    # How often a local folder is listed for state files Tune may have added. Between listings only
    # the files already known are looked at: a listing is one entry per trial (O(N) at every step of
    # Tune's loop, which made signing grow with the number of trials), a stat is one per state file.
    # Tune writes its state files together, so a new file comes with a change to a known one, which
    # signs (and lists) at once.
    RELIST_EVERY_S = 5.0

    def __init__(self, folder: SearchFolder):
        self.folder = folder
        self._signed: Signed = {}  # what the signatures file says, with each file's stamp when it was read
        self._staging: Optional[str] = None  # the local folder Tune saves its snapshot in, once known
        self._looked_at = 0.0
        self._listed_at = -math.inf

    def get_state(self) -> None:
        """Tune asks for this while it saves, after its snapshot is staged and before it is copied
        into the search folder: the moment to sign the staged copy."""
        if self._staging is not None and self._signed:
            try:
                self._signed = sign(self.folder, self._signed, source=self._staging)
            except OSError as e:  # as in on_step_end
                stop_if_refused(self.folder.path, e)
                logger.warning("Tune's state not signed (%s): %s", self.folder.path, e)
        return None  # stateless: the signatures are in the folder

    def _learn_staging(self, trials: list) -> None:
        # Every trial carries the experiment's storage context (Ray 2.60); its staging folder is where
        # the controller saves. Not known (no trial yet, another Ray): the search folder is signed.
        if self._staging is None and trials:
            try:
                staging = trials[0].storage.experiment_driver_staging_path
            except (AttributeError, RuntimeError, AssertionError):
                return
            self._staging = staging if os.path.isdir(staging) else None

    def _seen(self) -> dict[str, tuple[int, int]]:
        return {name: stamp for name, (stamp, _) in self._signed.items()}

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._learn_staging(trials)
        if self._staging is not None and self._signed:
            return  # signed as Tune saves (get_state); tuner.pkl, written once, was signed before
        uri = storage.is_uri(self.folder.path)
        if uri and time.monotonic() - self._looked_at < self.URI_EVERY_S:
            return
        self._looked_at = time.monotonic()
        try:
            seen = self._seen()
            if uri or not seen or self._looked_at - self._listed_at >= self.RELIST_EVERY_S:
                now = stamps(self.folder)
                self._listed_at = self._looked_at
            else:
                now = known_stamps(self.folder, seen)
            if now != seen:
                # Only the files that changed are read again (Tune's snapshot; its tuner.pkl stays).
                self._signed = sign(self.folder, self._signed)
                self._listed_at = time.monotonic()
        except OSError as e:  # a storage hiccup: the next step signs; a full or read-only disk stops the search
            stop_if_refused(self.folder.path, e)
            logger.warning("Tune's state not signed (%s): %s", self.folder.path, e)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._signed = sign(self.folder, self._signed)
