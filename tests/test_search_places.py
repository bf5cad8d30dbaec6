"""search/store/places.py: where a search's folder, study and tracking store live (the command line,
then the space file, then the environment, then the default) and the one rule for a password in any
of their URIs (moved into its client's variable, or refused; never written to search.json)."""
from __future__ import annotations

import os

import pytest

from search.store.errors import RunError
from search.store.places import first_given, search_storage, without_password


def test_the_first_given_place_wins_in_the_order_passed():
    assert first_given(("--flag", None), ("space.key", "from-file"), ("ENV", "from-env")) == ("space.key", "from-file")
    assert first_given(("--flag", ""), ("ENV", None)) is None


def test_the_search_folder_local_on_a_cluster_and_an_object_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert search_storage(None, None) == str(tmp_path / "ray_results")
    assert search_storage("s3://bucket/searches/", None) == "s3://bucket/searches"
    with pytest.raises(RunError, match="on a Ray cluster .* give --storage"):
        search_storage(None, "auto")
    with pytest.raises(RunError, match="relative path on this machine"):
        search_storage("results", "auto")
    assert search_storage("/shared/results", "auto") == "/shared/results"


def test_a_password_moves_to_its_clients_variable_or_is_refused_in_one_line(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    assert without_password("postgresql://u:p%40ss@db:5432/x", "--optuna-storage") == "postgresql://u@db:5432/x"
    assert os.environ["PGPASSWORD"] == "p@ss"
    with pytest.raises(RunError) as e:  # an object store's client reads its own credentials, not the URI's
        search_storage("s3://KEY:SECRET@bucket/searches", None)
    assert "--storage s3://KEY:***@bucket/searches: a password in a s3 URI" in str(e.value)
    assert "SECRET" not in str(e.value) and "\n" not in str(e.value)
