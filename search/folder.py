"""A search folder, STORAGE/NAME/, and what is in it:

    search.json    SearchInfo: how the search was started (its space file, MLflow run, trial count)
    space.yaml     the space file as it was when the search started (a resume runs exactly that)
    trials.json    the trial ledger: how every trial went (search/ledger.py)
    optuna.journal the Optuna study (search/study.py), unless it is kept in a database
    best/          the best checkpoint, a matnet checkpoint folder (search/export.py)
    figures/       its figures and IWAE evaluation
    summary.json   the best configuration, its metrics and evaluation, the top trials
    run_trial_*/   Ray Tune's trial folders: results and matnet checkpoints

Everything the project reads back from here is plain data it wrote itself (JSON, YAML, matnet
checkpoints); Ray Tune's own state files are read only by Tune, to resume.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from . import storage


class SearchFolderError(RuntimeError):
    """A search folder that is missing or damaged; the message says which file and what to do."""


@dataclass
class SearchInfo:
    name: str
    space_file: str                 # as given on the command line (messages name it)
    cwd: str                        # where the search was started: relative paths in the space are from here
    storage: str
    experiment_dir: str
    tracking_uri: str
    mlflow_experiment: str
    parent_run_id: Optional[str]
    num_samples: int
    max_concurrent: int
    optuna_storage: Optional[str] = None  # where the search's Optuna study is (search/study.py)
    optuna_study: Optional[str] = None    # its name (the search's)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


@dataclass(frozen=True)
class SearchFolder:
    path: str  # a local path or a URI

    def file(self, name: str) -> str:
        return storage.join(self.path, name)

    @property
    def info_file(self) -> str:
        return self.file("search.json")

    @property
    def space_copy(self) -> str:
        return self.file("space.yaml")

    @property
    def ledger(self) -> str:
        return self.file("trials.json")

    @property
    def best(self) -> str:
        return self.file("best")

    @property
    def figures(self) -> str:
        return self.file("figures")

    @property
    def summary(self) -> str:
        return self.file("summary.json")

    def is_search(self) -> bool:
        return storage.exists(self.info_file)

    def is_used(self) -> bool:
        """Anything of a search here already (ours, or Tune's state from a start that failed early)."""
        return self.is_search() or storage.exists(self.file("tuner.pkl"))

    # ---- search.json -----------------------------------------------------------------------------
    def write_info(self, info: SearchInfo, space_text: str) -> None:
        storage.write_text(self.space_copy, space_text)
        storage.write_text(self.info_file, json.dumps(asdict(info), indent=2) + "\n")

    def read_info(self) -> SearchInfo:
        if not self.is_search():
            raise SearchFolderError(f"{self.path}: no search.json there; give the folder of a search started with "
                                    f"python -m search.run (STORAGE/NAME)")
        try:
            raw = json.loads(storage.read_text(self.info_file))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SearchFolderError(f"{self.info_file}: not valid JSON ({e}); the search folder is damaged") from None
        known = {f.name for f in fields(SearchInfo)}
        if not isinstance(raw, dict) or not {"name", "space_file", "tracking_uri"} <= set(raw):
            raise SearchFolderError(f"{self.info_file}: not a search description; the search folder is damaged")
        return SearchInfo(**{k: v for k, v in raw.items() if k in known})

    def saved_space(self, info: SearchInfo):
        """The space the search started with (space.yaml), relative paths resolved from where it started."""
        from .space import load_space
        return load_space(info.space_file, text=storage.read_text(self.space_copy), cwd=info.cwd or os.getcwd())
