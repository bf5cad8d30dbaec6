"""search/study.py: where a search's Optuna study is kept, and the one-line errors for a storage or
a study that cannot be used (the searcher on a real search: tests/test_search_ray.py; on PostgreSQL:
tests/test_cluster.py)."""
from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from search.store.folder import SearchFolder
from search.store.places import STUDY_ENV as STORAGE_ENV
from search.store.places import study_storage as resolve_storage
from search.store.study import StudyError, StudyRef, check_storage
from tests.servers import free_port

from tests.helpers import ROOT  # noqa: E402


def test_where_a_new_search_keeps_its_study(tmp_path, monkeypatch):
    folder = SearchFolder(str(tmp_path / "results" / "s"))
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert resolve_storage(None, None, folder.path) == str(tmp_path / "results" / "s" / "optuna.journal")
    monkeypatch.setenv(STORAGE_ENV, "postgresql+psycopg://env@db/optuna")
    assert resolve_storage(None, None, folder.path) == "postgresql+psycopg://env@db/optuna"
    assert resolve_storage(None, "postgresql+psycopg://file@db/optuna", folder.path) == "postgresql+psycopg://file@db/optuna"
    assert resolve_storage("postgresql+psycopg://flag@db/optuna", "x", folder.path) == "postgresql+psycopg://flag@db/optuna"
    monkeypatch.delenv(STORAGE_ENV)
    with pytest.raises(StudyError, match="object store, which cannot hold the Optuna study; give a database"):
        resolve_storage(None, None, "s3://bucket/searches/s")


def test_a_password_goes_to_its_variable_a_non_url_is_refused_and_files_are_made_absolute(tmp_path, monkeypatch):
    """The one rule of search/store/places.py: a password never reaches search.json; PostgreSQL's goes to
    PGPASSWORD, as the tracking URI's does; a scheme whose client reads no variable is refused."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    assert check_storage("postgresql+psycopg://user:s3cr%40t@db/optuna", "sampler.storage") == \
        "postgresql+psycopg://user@db/optuna"
    import os
    assert os.environ["PGPASSWORD"] == "s3cr@t"
    with pytest.raises(StudyError) as e:
        check_storage("mysql://user:secret@db/optuna", "sampler.storage")
    assert "sampler.storage mysql://user:***@db/optuna: a password in a mysql URI" in str(e.value) and \
        "secret" not in str(e.value)
    with pytest.raises(StudyError, match="is not a database URL"):
        check_storage("sqlite://:nope:x", "--optuna-storage")
    assert check_storage("sqlite:///studies.db", "f") == f"sqlite:///{tmp_path}/studies.db"
    assert check_storage("studies.journal", "f") == str(tmp_path / "studies.journal")


def test_a_name_whose_study_ran_trials_is_refused_and_an_empty_one_is_made_anew(tmp_path):
    ref = StudyRef(str(tmp_path / "optuna.journal"), "s")
    assert not ref.exists()
    ref.create("min", [{"x": 1.0}])            # a start that failed before its first trial
    ref.create("max")                          # made anew: no queued point, the new direction
    study = ref.load()
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and study.trials == []
    study.tell(study.ask(), 1.0)
    with pytest.raises(StudyError, match="already holds a study named 's' with trials; start the search with another --name"):
        ref.check_new()
    with pytest.raises(StudyError, match="holds no study named 'other'"):
        StudyRef(ref.storage, "other").load()


def test_a_database_that_does_not_answer_is_one_line(tmp_path):
    ref = StudyRef(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/optuna", "s")
    with pytest.raises(StudyError) as e:
        ref.exists()
    assert str(e.value).startswith(f"the Optuna storage {ref.storage} cannot be opened (") and "\n" not in str(e.value)


def test_a_password_in_the_study_url_is_taken_and_never_shown_or_written(tmp_path):
    """search.run takes it into PGPASSWORD and goes on with the URL without it: here to a database that
    does not answer, which is one line, before Ray starts, naming the URL without the password."""
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "search.run", str(ROOT / "spaces" / "quickstart.yaml"), "--storage",
                        str(tmp_path / "results"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                        "--optuna-storage", f"postgresql+psycopg://user:secret@127.0.0.1:{port}/optuna"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"the Optuna storage postgresql+psycopg://user@127.0.0.1:{port}/optuna cannot be opened" in r.stderr
    assert "secret" not in r.stderr + r.stdout and not (tmp_path / "results").exists()
