"""A search folder, STORAGE/NAME/, and what is in it:

    search.json    SearchInfo: how the search was started (its space file, tracking, trial count)
    space.yaml     the space file as it was when the search started (a resume runs exactly that)
    trials.json    the trial ledger: how every trial went (search/store/ledger.py), with trials.log,
                   the changes since trials.json was last written whole
    optuna.journal the Optuna study (search/store/study.py), unless it is kept in a database
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
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from . import storage
from .errors import SearchFolderError
from .tune_files import SEARCH_BEST, SEARCH_INFO, TUNE_STATE


@dataclass
class SearchInfo:
    name: str
    space_file: str                 # as given on the command line (messages name it)
    cwd: str                        # where the search was started: relative paths in the space are from here
    storage: str
    experiment_dir: str
    num_samples: int
    max_concurrent: int
    strategy: str                   # the registered search strategy (search/tune/strategies/)
    optuna_storage: str             # where the search's Optuna study is (search/store/study.py)
    optuna_study: str               # its name (the search's)
    # Each tracking back-end's state, by its section of the space file (search/tracking/__init__.py).
    tracking: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    @property
    def study(self):
        """The search's Optuna study (search/store/study.py)."""
        from .study import StudyRef
        return StudyRef(self.optuna_storage, self.optuna_study)


def older(raw: dict[str, Any]) -> dict[str, Any]:
    """search.json as written before tracking back-ends were pluggable (its back-end's three fields at
    the top), read as now: such a search's folder is read and exported to the runs it logged to."""
    raw = dict(raw)
    uri, experiment, parent = raw.pop("tracking_uri"), raw.pop("mlflow_experiment", ""), raw.pop("parent_run_id", None)
    raw.setdefault("tracking", {"mlflow": {"tracking_uri": uri, "experiment": experiment, "parent_run_id": parent}}
                   if uri else {})
    return raw


@dataclass(frozen=True)
class SearchFolder:
    path: str  # a local path or a URI

    @property
    def name(self) -> str:
        """The search's name: the folder's own name."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def file(self, name: str) -> str:
        return storage.join(self.path, name)

    @property
    def info_file(self) -> str:
        return self.file(SEARCH_INFO)

    @property
    def space_copy(self) -> str:
        return self.file("space.yaml")

    @property
    def ledger(self) -> str:
        return self.file("trials.json")

    @property
    def ledger_log(self) -> str:
        return self.file("trials.log")

    @property
    def best(self) -> str:
        return self.file(SEARCH_BEST)

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
        return self.is_search() or storage.exists(self.file(TUNE_STATE))

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
        if isinstance(raw, dict) and "tracking_uri" in raw:
            raw = older(raw)
        known = {f.name for f in fields(SearchInfo)}
        required = {f.name for f in fields(SearchInfo) if f.default is MISSING and f.default_factory is MISSING}
        if not isinstance(raw, dict) or not required <= set(raw):
            missing = ", ".join(sorted(required - set(raw))) if isinstance(raw, dict) else "everything"
            raise SearchFolderError(f"{self.info_file}: not a search description of this version (no {missing}); "
                                    f"the search folder is damaged or was written by a pre-release version")
        return SearchInfo(**{k: v for k, v in raw.items() if k in known})

    def saved_space(self, info: SearchInfo):
        """The space the search started with (space.yaml), relative paths resolved from where it started."""
        from ..space import load_space
        return load_space(info.space_file, text=storage.read_text(self.space_copy), cwd=info.cwd or os.getcwd())
