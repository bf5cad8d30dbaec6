"""The TensorBoard event files of a search's trials, written by the tracking writer (writer.py): one
run per trial, LOGDIR/TRIAL_ID, read by `tensorboard --logdir LOGDIR`.

- Scalars: every result's numbers at matnet's training step (the per-layer KLs as val_kl/0, ...), and
  at the end `iterations` and the trial's best value.
- Images: a finished trial's figures (samples or imputations, per-layer KL, Figure 4) under figures/.
- Text: the trial's whole config (once), its outcome tags, PBT exploitations and restarts.
- HParams: the trial's session start (its drawn parameters) and end (its outcome:
  tensorboard_events.py); the experiment they belong to is written by the driver (tensorboard_tracker.py).

Nothing twice: at the start the existing runs are read back (their last training_iteration, whether
their session started or ended), so a resumed search or a restarted trial adds only what is new.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..store.keys import ITERATION_KEY
from .sinks import TrialSink
from .tensorboard_events import add_png, session_end, session_start


def logged(run: Path) -> tuple[int, bool, bool]:
    """What a trial's run holds already: its last training_iteration, whether its HParams session
    started, whether it ended."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams.metadata import SESSION_END_INFO_TAG, SESSION_START_INFO_TAG
    last, started, ended = 0, False, False
    for events in sorted(run.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(events)).Load():
            for value in event.summary.value:
                if value.tag == ITERATION_KEY and value.tensor.float_val:
                    last = max(last, int(value.tensor.float_val[0]))
                started |= value.tag == SESSION_START_INFO_TAG
                ended |= value.tag == SESSION_END_INFO_TAG
    return last, started, ended


class TrialEvents(TrialSink):
    label = "TensorBoard"

    def __init__(self, logdir: str, sample_images: int, space: Any, search_name: str):
        self.logdir = Path(logdir)
        self.sample_images = sample_images
        self.space = space
        self.search_name = search_name
        self.writers: dict[str, Any] = {}       # trial id -> its open SummaryWriter
        self.last_iter: dict[str, int] = {}     # trial id -> last training_iteration written
        self.started: set[str] = set()          # trials whose session start is written
        self.ended: set[str] = set()            # trials whose session end is written
        for run in (p for p in self.logdir.iterdir() if p.is_dir()) if self.logdir.is_dir() else []:
            self.last_iter[run.name], started, ended = logged(run)
            if started:
                self.started.add(run.name)
            if ended:
                self.ended.add(run.name)

    def _writer(self, trial_id: str) -> Any:
        if trial_id not in self.writers:
            from torch.utils.tensorboard import SummaryWriter
            self.writers[trial_id] = SummaryWriter(str(self.logdir / trial_id), flush_secs=10**6)  # flush(): ours
        return self.writers[trial_id]

    # ---- what the callback sends (sinks.py) --------------------------------------------------------
    def start(self, trial_id: str, drawn: dict[str, Any]) -> None:
        if trial_id in self.started:
            return
        writer = self._writer(trial_id)
        writer.file_writer.add_summary(session_start(drawn, group=trial_id))
        try:
            config = self.space.trial_config(dict(drawn)).to_dict()
            writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```")
        except Exception:  # noqa: BLE001 - its drawn parameters are in the session start all the same
            pass
        self.started.add(trial_id)

    def recover(self, trial_id: str, drawn: dict[str, Any], failures: int) -> None:
        self._writer(trial_id).add_text("restarts", str(failures))

    def result(self, trial_id: str, drawn: dict[str, Any], iteration: int, step: int, ts: int,
               metrics: dict[str, float]) -> None:
        if iteration <= self.last_iter.get(trial_id, 0):
            return  # written before an interruption or a restart: not twice
        self.last_iter[trial_id] = iteration
        writer = self._writer(trial_id)
        for name, value in metrics.items():
            writer.add_scalar(name, value, global_step=step, walltime=ts / 1000)

    def exploit(self, trial_id: str, drawn: dict[str, Any], text: str) -> None:
        self._writer(trial_id).add_text("pbt/exploit", text)

    def finish(self, trial_id: str, drawn: dict[str, Any], outcome: str, step: int, ts: int,
               finals: dict[str, float], tags: dict[str, str]) -> None:
        if trial_id in self.ended:
            return
        writer = self._writer(trial_id)
        for name, value in finals.items():
            writer.add_scalar(name, value, global_step=step, walltime=ts / 1000)
        writer.add_text("outcome", "\n\n".join(f"**{k}**: {v}" for k, v in tags.items()), global_step=step)

    def end(self, trial_id: str, outcome: str, files: list[tuple[str, str]]) -> None:
        """The figures as images (the PNGs; metrics.jsonl stays with the checkpoint), then the session's end."""
        if trial_id in self.ended:
            return
        writer = self._writer(trial_id)
        for path, folder in files:
            if path.endswith(".png"):
                add_png(writer, f"{folder}/{Path(path).stem}", path)
        writer.file_writer.add_summary(session_end(outcome))
        self.ended.add(trial_id)
        self.writers.pop(trial_id).close()  # a search of thousands of trials keeps only the running ones open

    def flush(self, trial_id: str | None = None) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
