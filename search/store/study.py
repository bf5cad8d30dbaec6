"""The search's Optuna study, kept in a storage that outlives the search.

Every search has one study, named after the search, in one of:

- a journal file in the search folder, STORAGE/NAME/optuna.journal: the default for a local folder
  or a shared one (`--shared-storage`). Only the driver writes it (the searcher runs there), and
  Optuna's journal is an append-only file with a lock file beside it, safe on a shared file system.
- a database URL (or a journal file elsewhere): `--optuna-storage`, else `sampler.storage` in the space
  file, else OPTUNA_STORAGE (the variable Optuna's own CLI reads). On a cluster: a database of its own
  on the PostgreSQL server MLflow uses, e.g. postgresql+psycopg://mlflow@postgres:5432/optuna.
  Which one is decided in search/store/places.py, with every other place of a search. A password in
  the URL is moved into PGPASSWORD (places.without_password), never written to search.json or Tune's
  state; a ~/.pgpass (PGPASSFILE) entry works too.

The searcher (search/tune/searcher.py) asks and tells it trial by trial, so `optuna.load_study` and
optuna-dashboard see every trial with its state and values while the search runs and after it:

    optuna.load_study(study_name="quickstart",
                      storage=JournalStorage(JournalFileBackend("ray_results/quickstart/optuna.journal")))
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from . import storage
from .errors import StudyError
from .keys import direction
from .places import without_password

# A study kept in this process's memory only (the strategy simulator, search/bench/simulate.py: no
# file is written per simulated trial); one InMemoryStorage per process holds every such study.
MEMORY = ":memory:"
_MEMORY_STORAGE: list[Any] = []
NOT_RECORDED = "trials_not_recorded"  # a study's user attribute: why the search's trials are not in it


def check_storage(given: str, where: str) -> str:
    """A database URL without a password (moved to its variable), or a journal file's path; a file's
    path made absolute."""
    if not storage.is_uri(given):
        return str(Path(given).expanduser().resolve())
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    try:
        url = make_url(given)
    except (ArgumentError, ValueError):
        raise StudyError(f"{where}: {given!r} is not a database URL; use e.g. sqlite:///optuna.db or "
                         f"postgresql+psycopg://USER@HOST:5432/optuna, or a journal file's path") from None
    if url.password:
        given = without_password(given, where, StudyError)
        url = make_url(given)
    if url.drivername.startswith("sqlite") and url.database and not Path(url.database).is_absolute():
        # kept absolute, as search.json keeps it: --resume from another folder finds the same file
        return url.set(database=str(Path(url.database).expanduser().resolve())).render_as_string()
    return given


@dataclass(frozen=True)
class StudyRef:
    """A study by where it is stored and its name; plain data (pickled in Tune's state)."""

    storage: str   # a database URL, or the path of a journal file
    name: str

    def open_storage(self) -> Any:
        import optuna
        if self.storage == MEMORY:
            if not _MEMORY_STORAGE:
                _MEMORY_STORAGE.append(optuna.storages.InMemoryStorage())
            return _MEMORY_STORAGE[0]
        if storage.is_uri(self.storage):
            return optuna.storages.RDBStorage(self.storage)
        from optuna.storages.journal import JournalFileBackend
        Path(self.storage).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(self.storage))

    def exists(self) -> bool:
        import optuna
        if self.storage != MEMORY and not storage.is_uri(self.storage) and not Path(self.storage).exists():
            return False
        return self.name in optuna.get_all_study_names(self._storage_or_fail())

    def check_new(self) -> None:
        """A new search may use this name: the storage holds no study of that name that ran a trial
        (an empty one is left by a start that failed before its first trial, and is made anew)."""
        if self._ran_trials():
            raise StudyError(f"the Optuna storage {self.storage} already holds a study named {self.name!r} with "
                             f"trials; start the search with another --name, or delete that study "
                             f"(optuna delete-study --study-name {self.name} --storage ...)")

    def create(self, mode: str, points: Optional[list[dict[str, Any]]] = None, metric: Optional[str] = None,
               not_recorded: Optional[str] = None) -> None:
        """A new study for the search metric `metric` (its name is the objective's, as optuna-dashboard
        shows it), with the points to evaluate first queued. `not_recorded`: why the search's trials
        will not be recorded in it (a strategy whose trials change parameters as they train)."""
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created ..." at INFO
        self.check_new()
        if self.exists():
            optuna.delete_study(study_name=self.name, storage=self._storage_or_fail())
        study = optuna.create_study(storage=self._storage_or_fail(), study_name=self.name,
                                    direction=direction(mode))
        if metric:
            import warnings
            with warnings.catch_warnings():  # experimental since Optuna 3.2, unchanged since
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([metric])
        if not_recorded:
            study.set_user_attr(NOT_RECORDED, not_recorded)
            return
        for point in points or []:
            study.enqueue_trial(point)

    def not_recorded(self) -> Optional[str]:
        """Why the study holds none of the search's trials (None: it holds them)."""
        return self.load().user_attrs.get(NOT_RECORDED)

    def _ran_trials(self) -> bool:
        from optuna.trial import TrialState
        if not self.exists():
            return False
        return any(t.state != TrialState.WAITING for t in self.load().get_trials(deepcopy=False))

    def load(self, sampler: Any = None) -> Any:
        import optuna
        if not self.exists():
            raise StudyError(f"the Optuna storage {self.storage} holds no study named {self.name!r}; was it "
                             f"deleted? (start a new search with --name)")
        return optuna.load_study(study_name=self.name, storage=self._storage_or_fail(), sampler=sampler,
                                 pruner=optuna.pruners.NopPruner())

    def _storage_or_fail(self) -> Any:
        try:
            return self.open_storage()
        except Exception as e:  # noqa: BLE001 - a database that cannot be reached: one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StudyError(f"the Optuna storage {self.storage} cannot be opened ({first}); check the URL, that the "
                             f"server runs, and PGPASSWORD / ~/.pgpass") from None

    def how_to_load(self) -> str:
        """The Python line that opens this study, for messages and the README."""
        if storage.is_uri(self.storage):
            return f'optuna.load_study(study_name="{self.name}", storage="{self.storage}")'
        return (f'optuna.load_study(study_name="{self.name}", storage=optuna.storages.JournalStorage('
                f'optuna.storages.journal.JournalFileBackend("{self.storage}")))')
