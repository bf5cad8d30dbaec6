"""A search tracked in TensorBoard: event files under a log directory on the driver's disk (by
default the search's folder, STORAGE/NAME/tensorboard), one run per trial (trial_events.py) and the
search's own run at the top, which holds the HParams experiment (every searched parameter and the
metrics: tensorboard_events.py) and, after the export, the best checkpoint's figures and summary.

    tensorboard --logdir STORAGE/NAME/tensorboard     then the HParams tab compares the trials

Its part of search.json (`tracking.tensorboard`): the log directory, absolute.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..store import storage


class TensorboardTracker:
    section = "tensorboard"  # the space file's section, search.json's and summary.json's key
    label = "TensorBoard"

    def __init__(self, state: dict[str, Any], settings: Any, info: Any):
        self.state = state
        self.settings = settings
        self.info = info

    @staticmethod
    def describe(settings: Any, uri: str | None, name: str, folder: str) -> dict[str, Any]:
        from ..store.errors import RunError
        if settings.logdir:
            logdir = Path(settings.logdir).expanduser()
        elif storage.is_uri(folder):
            raise RunError(f"tensorboard: the search's folder is {folder}, and TensorBoard's event files are written "
                           f"on this machine's disk: set tensorboard.logdir in the space file to a local folder")
        else:
            logdir = Path(folder) / "tensorboard"
        return {"logdir": str(logdir.resolve())}

    @staticmethod
    def check_resume(state: dict[str, Any], uri: str | None) -> None:
        pass  # the event files are where they were: a resumed search adds to them

    @staticmethod
    def for_export(state: dict[str, Any], uri: str | None) -> bool:
        return Path(state["logdir"]).is_dir()

    @property
    def logdir(self) -> Path:
        return Path(self.state["logdir"])

    def start(self, space: Any, folder_path: str, resume: bool) -> None:
        """The HParams experiment, once: its parameters and their domains, and the metrics the table shows."""
        from torch.utils.tensorboard import SummaryWriter

        from .tensorboard_events import experiment
        if resume and any(self.logdir.glob("events.out.tfevents.*")):
            return  # TensorBoard keeps the first experiment it reads: written once
        metric = space.settings.experiment.metric
        description = (f"Search {self.info.name} of {space.path} ({self.info.strategy}, {self.info.num_samples} "
                       f"trials); each run under this folder is a trial")
        with SummaryWriter(str(self.logdir)) as writer:
            writer.file_writer.add_summary(experiment(space.distributions(), [metric, f"best_{metric}", "iterations"],
                                                      description))

    def sink(self, space: Any) -> tuple[str, str, dict[str, Any]]:
        return (self.label, "search.tracking.trial_events:TrialEvents",
                {"logdir": str(self.logdir), "sample_images": self.settings.sample_images})

    def log_best(self, summary: dict[str, Any], figures: list[Path], study_files: list[Path],
                 importances: dict[str, float], checkpoint: Path) -> dict[str, Any]:
        """The best checkpoint's figures and the study's as images of the search's own run."""
        from torch.utils.tensorboard import SummaryWriter

        from .tensorboard_events import add_png
        with SummaryWriter(str(self.logdir)) as writer:
            for path in [*figures, *study_files]:
                if path.suffix == ".png":
                    add_png(writer, f"best/{path.stem}", path)
            for name, value in importances.items():
                writer.add_scalar(f"param_importance/{name}", value)
        return {"logdir": str(self.logdir)}

    def log_summary(self, text: str) -> None:
        from torch.utils.tensorboard import SummaryWriter
        with SummaryWriter(str(self.logdir)) as writer:
            writer.add_text("summary", "```\n" + text + "```")  # summary.json, kept as written

    def close(self, status: str) -> None:
        pass  # each trial's run was closed at its end; a trial cut short keeps no HParams end (shown "unknown")

    def where(self) -> str | None:
        return f"tensorboard: tensorboard --logdir {self.logdir}   (the HParams tab compares the trials)"

    @staticmethod
    def best_lines(part: dict[str, Any]) -> list[str]:
        return []
