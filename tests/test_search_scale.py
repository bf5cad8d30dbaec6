"""The search driver at scale, reduced to what the default suite can afford: a search of 60 replayed
trials, 16 at once, interrupted at about half by SIGINT and resumed, ends with exactly 60 trials in
trials.json, in the Optuna study and as MLflow child runs, one each, none left running, and its best
exported; and the scale benchmark itself runs and reports (search.bench scale)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import ROOT, mlflow_runs, optuna_study

SEARCH = """
import sys
from pathlib import Path
from search.bench import scale
from search.bench.curves import load
from search.bench.replay import replay_trainable
from search.bench.curves import curves_space
from search.bench.surrogate import Surrogate
from search.run import SearchOptions, run_search
from search.tune.harness import Harness

work = Path(sys.argv[1])
space = scale._space(work, 60, 16)
curves = load(scale.CURVES)
model = Surrogate(curves, curves_space(curves), trees=30)
template = str(work / "template" / "checkpoint") if (work / "template").exists() else scale._template(space, work)
outcome = run_search(space, SearchOptions(storage=str(work / "results"), tracking_uri=f"sqlite:///{work}/mlflow.db",
                                          resume="--resume" in sys.argv, trust_state=False),
                     Harness(trainable=replay_trainable(space, model, 0, time_scale=0.12,
                                                        checkpoint_template=template)))
sys.exit(outcome.code)
"""


def ended(folder: Path) -> int:
    from search.store.folder import SearchFolder
    from search.store.ledger import read_records
    try:
        return sum(1 for r in read_records(SearchFolder(str(folder))).values() if r.ended)
    except Exception:  # noqa: BLE001 - read while being written: try again
        return 0


def test_an_interrupted_search_of_60_trials_resumes_to_exactly_60_of_each(tmp_path):
    script = tmp_path / "driver.py"  # not search.py: it would shadow the search package
    script.write_text(SEARCH)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    folder = tmp_path / "results" / "scale"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while ended(folder) < 25 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out[-3000:]
    assert 25 <= ended(folder) < 60
    r = subprocess.run([sys.executable, str(script), str(tmp_path), "--resume"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]

    # Replayed curves include diverging ones: every trial ended, each outcome told alike everywhere.
    records = json.loads((folder / "trials.json").read_text())["trials"]
    outcomes = Counter(rec["outcome"] for rec in records.values())
    assert len(records) == 60 and set(outcomes) <= {"completed", "diverged"} and outcomes["completed"] >= 40
    study = optuna_study(folder)
    state = {"completed": "COMPLETE", "diverged": "FAIL"}
    assert len(study.trials) == 60
    assert {t.user_attrs["ray_trial_id"]: t.state.name for t in study.trials} == \
        {tid: state[rec["outcome"]] for tid, rec in records.items()}
    _, parents, kids = mlflow_runs(f"sqlite:///{tmp_path}/mlflow.db", "scale")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    status = {"completed": "FINISHED", "diverged": "FAILED"}
    assert sorted(k.data.tags["trial_id"] for k in kids) == sorted(records)
    assert all(k.info.status == status[records[k.data.tags["trial_id"]]["outcome"]] for k in kids)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["trials"] == {**outcomes, "total": 60} and summary["best"]["trial_id"] in records

def test_the_scale_benchmark_reports_what_it_measured(tmp_path):
    r = subprocess.run([sys.executable, "-m", "search.bench", "scale", "--setups", "plain,platform,plain-checkpoints",
                        "--trials", "6", "--concurrent", "3", "--trial-seconds", "0.5", "--json", str(tmp_path / "scale.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    rows = json.loads((tmp_path / "scale.json").read_text())
    assert [row["setup"] for row in rows] == ["plain", "platform", "plain-checkpoints"]
    for row in rows:
        assert row["trials"] == 6 and row["wall_s"] >= row["ideal_s"] == 1.0 and row["driver_cpu_s"] > 0
        assert {"date", "commit", "machine"} <= set(row)  # each row names where it ran
        # Tune saves its state at least once at the end, and the saves are timed beside the rest
        assert row["tune_snapshots"] >= 1 and row["driver_seconds"]["tune snapshots"] > 0
    platform = rows[1]
    assert {"suggest/tell", "mlflow", "ledger", "signing", "export"} <= set(platform["driver_seconds"])
    assert platform["exit_status"] == 0 and platform["folder_mb"] > 0
    assert "plain" in r.stdout and "platform" in r.stdout and "x ideal" in r.stdout
    # Plain Tune keeping each trial's checkpoint, as the search does: the checkpoints are in its folder
    assert rows[2]["folder_mb"] > rows[0]["folder_mb"] + 1
    # Replayed trials checkpoint at every report, as real ones do (8 reports each here)
    assert rows[2]["checkpoint_cadence"] == "every" and rows[0]["checkpoint_cadence"] is None
    # Keeping one checkpoint, every checkpoint forced a snapshot of Tune's state; keeping two, every
    # second one did. The row is added beside the others, not over them
    r = subprocess.run([sys.executable, "-m", "search.bench", "scale", "--setups", "plain-checkpoints", "--trials", "6",
                        "--concurrent", "3", "--trial-seconds", "0.5", "--keep-checkpoints", "2",
                        "--json", str(tmp_path / "scale.json")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    rows = json.loads((tmp_path / "scale.json").read_text())
    assert [(row["setup"], row["keep_checkpoints"]) for row in rows] == [
        ("plain", 1), ("platform", 1), ("plain-checkpoints", 1), ("plain-checkpoints", 2)]
    assert rows[2]["tune_snapshots"] >= rows[3]["tune_snapshots"] + 3 and "K=2" in r.stdout


def test_a_later_scale_run_keeps_the_rows_it_does_not_measure_again(tmp_path):
    from search.bench.scale_rows import previous_rows
    from search.store.errors import RunError
    path = tmp_path / "scale.json"
    rows = [{"setup": s, "trials": n, "concurrent": 16} for s in ("plain", "platform") for n in (10, 100)]
    path.write_text(json.dumps(rows))
    kept = previous_rows(str(path), [100], [16, 64], ["platform"])
    assert kept == [rows[0], rows[1], rows[2]]  # only platform at N=100, C=16 is measured again
    # a run keeping two checkpoints measures other rows: those written before kept one
    assert previous_rows(str(path), [100], [16, 64], ["platform"], keep=2) == rows
    assert previous_rows(str(tmp_path / "none.json"), [10], [16], ["plain"]) == []
    path.write_text("not json")
    with pytest.raises(RunError, match="not a JSON file"):
        previous_rows(str(path), [10], [16], ["plain"])
