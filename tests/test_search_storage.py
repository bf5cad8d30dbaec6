"""Storage (local folders and URIs) and the search folder's own files."""
from __future__ import annotations

import json

import pytest

from search.store import storage
from search.store.folder import SearchFolder, SearchFolderError, SearchInfo
from search.store.ledger import TrialRecord, end_running, read_records, write_records


@pytest.mark.parametrize("as_uri", [False, True])
def test_replace_dir_swaps_a_whole_folder_and_leaves_no_staging_behind(tmp_path, as_uri):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("new")
    (src / "sub" / "b.txt").write_text("nested")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    target = f"file://{dest}" if as_uri else str(dest)
    storage.replace_dir(src, target)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["a.txt", "sub", "sub/b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "src"]  # no .tmp / .old left over
    storage.write_text(storage.join(target, "x.json"), "{}")
    assert storage.exists(storage.join(target, "x.json")) and storage.read_text(storage.join(target, "x.json")) == "{}"
    with storage.local_copy(target) as local:
        assert (local / "sub" / "b.txt").read_text() == "nested"


def test_relative_to_finds_a_checkpoint_under_the_search_folder(tmp_path):
    base = tmp_path / "results" / "s"
    assert storage.relative_to(str(base / "run_trial_1" / "checkpoint_000002"), str(base)) == \
        "run_trial_1/checkpoint_000002"
    assert storage.relative_to(str(tmp_path / "elsewhere"), str(base)) is None
    assert storage.relative_to(f"{base}/t/c", f"file://{base}") == "t/c"


def test_a_search_folder_reads_back_what_it_wrote_and_refuses_what_it_did_not(tmp_path):
    folder = SearchFolder(str(tmp_path / "s"))
    assert not folder.is_search() and not folder.is_used()
    with pytest.raises(SearchFolderError, match="no search.json"):
        folder.read_info()
    info = SearchInfo(name="s", space_file="space.yaml", cwd=str(tmp_path), storage=str(tmp_path),
                      experiment_dir=folder.path, num_samples=4, max_concurrent=2, strategy="tpe+asha",
                      optuna_storage=str(tmp_path / "s" / "optuna.journal"), optuna_study="s",
                      tracking={"mlflow": {"tracking_uri": "sqlite:///x.db", "experiment": "s", "parent_run_id": None}})
    folder.write_info(info, "experiment: {}\n")
    assert folder.is_search() and folder.read_info() == info
    (tmp_path / "s" / "search.json").write_text("[1, 2]")
    with pytest.raises(SearchFolderError, match="not a search description"):
        folder.read_info()
    (tmp_path / "s" / "search.json").write_text("{not json")
    with pytest.raises(SearchFolderError, match="not valid JSON"):
        folder.read_info()


def test_the_ledger_round_trips_and_ends_what_a_time_budget_cut_short(tmp_path):
    folder = SearchFolder(str(tmp_path))
    assert read_records(folder) == {}
    done = TrialRecord("a", {"train.lr": 0.001}, outcome="completed")
    cut = TrialRecord("b", {"train.lr": 0.002})
    cut.observe({"training_iteration": 2, "step": 20, "m": 3.0, "final": False, "config": {"x": 1}}, "m", "min")
    cut.observe({"training_iteration": 3, "step": 30, "m": 4.0, "final": False}, "m", "min")
    last = TrialRecord("c", {"train.lr": 0.003})
    last.observe({"training_iteration": 4, "step": 40, "m": 2.0, "final": True}, "m", "min")
    write_records(folder, {"a": done, "b": cut, "c": last})
    records = read_records(folder)
    assert records["b"].best_value == 3.0 and records["b"].best_step == 20 and records["b"].iterations == 3
    assert "config" not in records["b"].last  # only plain values are kept
    assert end_running(folder, "m") == 2
    assert {t: r.outcome for t, r in read_records(folder).items()} == {"a": "completed", "b": "pruned", "c": "completed"}
    (tmp_path / "trials.json").write_text(json.dumps({"trials": [1]}))
    with pytest.raises(SearchFolderError, match="not a trial ledger"):
        read_records(folder)


def test_the_ledger_appends_what_changed_and_reads_a_torn_last_line_as_not_written(tmp_path):
    from search.store.ledger import append_records
    folder = SearchFolder(str(tmp_path))
    a, b = TrialRecord("a", {"x": 1}), TrialRecord("b", {"x": 2})
    write_records(folder, {"a": a, "b": b})
    a.observe({"training_iteration": 1, "step": 10, "m": 5.0}, "m", "min")
    append_records(folder, [a])
    a.observe({"training_iteration": 2, "step": 20, "m": 4.0}, "m", "min")
    append_records(folder, [a])
    whole = (tmp_path / "trials.json").read_text()
    assert read_records(folder)["a"].best_value == 4.0 and read_records(folder)["b"] == b
    with open(tmp_path / "trials.log", "a") as f:
        f.write('{"trial_id": "a", "params": {"x"')  # a crash while a line was written
    assert read_records(folder)["a"].iterations == 2
    (tmp_path / "trials.log").write_text('{"broken\n' + (tmp_path / "trials.log").read_text())
    with pytest.raises(SearchFolderError, match="line 1 is not a trial record"):
        read_records(folder)
    write_records(folder, {"a": a, "b": b})  # written whole: the log's changes are in it
    assert not (tmp_path / "trials.log").exists() and (tmp_path / "trials.json").read_text() != whole


def test_the_ledger_callback_costs_the_trials_that_changed_not_the_whole_search(tmp_path):
    """A result of one trial among 500 appends one line; trials.json is rewritten whole only once the
    log is twice as long as the search."""
    from types import SimpleNamespace

    from search.tune.callbacks import TrialLedger
    folder = SearchFolder(str(tmp_path))
    ledger = TrialLedger(folder, "m", "min", min_interval_s=0.0)
    ledger.setup()
    trials = [SimpleNamespace(trial_id=f"t{i}", config={"x": i}) for i in range(500)]
    for t in trials:
        ledger.on_trial_start(0, [], t)
    rewrites = (tmp_path / "trials.json").stat().st_mtime_ns
    log_size = (tmp_path / "trials.log").stat().st_size
    ledger.on_trial_result(0, [], trials[7], {"training_iteration": 1, "step": 10, "m": 3.0})
    grew = (tmp_path / "trials.log").stat().st_size - log_size
    assert 0 < grew < 400 and (tmp_path / "trials.json").stat().st_mtime_ns == rewrites
    assert read_records(folder)["t7"].best_value == 3.0 and len(read_records(folder)) == 500
    ledger.on_experiment_end([])
    assert not (tmp_path / "trials.log").exists() and len(read_records(folder)) == 500
