"""The tracking writer (search/tracking/writer.py): the process that makes a search's tracking requests
(here MLflow's) for the Tune callback. What the callback hands it is all written by `close()`, in order, batched,
never twice (also across a restart of the writer, as after an interrupted search), whatever Ctrl-C
does to the process group; a tracking server it cannot reach costs a warning, not the search."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from search.space import load_space
from search.tracking.runs import start_parent
from search.tracking.writer import TrackingWriter
from tests.helpers import write_space

METRIC = "val_elbo_nats"


def metrics(it: int, value: float) -> tuple:
    """A result message's arguments after the trial's id and parameters: iteration, step, time, numbers."""
    return it, 10 * it, int(time.time() * 1000), {METRIC: value, "training_iteration": float(it)}


def mlflow_writer(uri: str, parent: str, space) -> TrackingWriter:
    return TrackingWriter([("MLflow", "search.tracking.trial_runs:TrialRuns",
                            {"tracking_uri": uri, "parent_run_id": parent, "sample_images": 0})], space, "writer")


def child_runs(uri: str, parent: str) -> dict[str, object]:
    client = MlflowClient(uri)
    experiment = client.get_run(parent).info.experiment_id
    return {r.data.tags["trial_id"]: r for r in client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'")}


def test_everything_sent_is_written_once_by_close_also_across_a_restart_and_out_of_reach_of_ctrl_c(tmp_path: Path):
    space = load_space(write_space(tmp_path, "writer", n=2, steps=40, mlflow={"sample_images": 0}))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_parent(uri, "writer", "writer", params={}, tags={})
    drawn = space.valid_samples(1, 0)[0]

    writer = mlflow_writer(uri, parent, space)
    writer.send("start", "t1", drawn)
    for it in (1, 2, 3):
        writer.send("result", "t1", drawn, *metrics(it, 200.0 - it))
    writer.send("result", "t1", drawn, *metrics(2, 999.0))  # a restarted trial reports iteration 2 again
    # Ctrl-C at a terminal goes to the foreground process group: the writer is not in it.
    assert os.getpgid(writer._process.pid) != os.getpgid(0)
    # It yields the CPU to the trials: a lower priority than the driver's (as soon as it has started).
    deadline = time.monotonic() + 60
    while (os.getpriority(os.PRIO_PROCESS, writer._process.pid) < min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert os.getpriority(os.PRIO_PROCESS, writer._process.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    writer.close()
    assert writer.cpu_seconds > 0

    client = MlflowClient(uri)
    run = child_runs(uri, parent)["t1"]
    assert run.info.status == "RUNNING" and {k: run.data.params[k] for k in drawn} == {k: str(v) for k, v in drawn.items()}
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, METRIC)] == [
        (10, 199.0), (20, 198.0), (30, 197.0)]

    # A resumed search: a new writer finds the trial's run again and knows what it holds.
    writer = mlflow_writer(uri, parent, space)
    writer.send("start", "t1", drawn)
    for it in (3, 4):
        writer.send("result", "t1", drawn, *metrics(it, 200.0 - it))
    writer.send("finish", "t1", drawn, "completed", 40, int(time.time() * 1000), {METRIC: 196.0},
                {"status": "completed"}, None, {}, "t1")
    writer.close()
    runs = child_runs(uri, parent)
    assert list(runs) == ["t1"] and runs["t1"].info.status == "FINISHED"
    assert runs["t1"].data.tags["status"] == "completed"
    assert [m.step for m in client.get_metric_history(runs["t1"].info.run_id, "training_iteration")] == [10, 20, 30, 40]


def test_a_tracking_server_it_cannot_reach_costs_one_warning_and_close_returns(tmp_path: Path, capfd):
    space = load_space(write_space(tmp_path, "writer", n=2, steps=40, mlflow={"sample_images": 0}))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    start_parent(uri, "writer", "writer", params={}, tags={})
    writer = mlflow_writer(uri, "0" * 32, space)  # no such parent run
    writer.send("start", "t1", {})
    writer.send("result", "t1", {}, *metrics(1, 1.0))
    started = time.monotonic()
    writer.close()
    assert time.monotonic() - started < 60
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "MLflow" in line]
    assert len(lines) == 1 and "could not reach the search's runs" in lines[0], err
    assert "Traceback" not in err


class FailsToLoad:
    """Pickles fine on the driver; loading it in the writer raises (int('not a number'))."""
    def __reduce__(self):
        return int, ("not a number",)


def test_a_message_that_cannot_be_pickled_or_read_back_costs_one_warning_and_only_itself(tmp_path: Path, capfd,
                                                                                          caplog, monkeypatch):
    # the driver's warnings straight to caplog, not through the root logger: a library earlier in the
    # suite may have left a root handler on a stream pytest has since closed, whose "Logging error"
    # traceback would land in the stderr this test reads
    driver_log = logging.getLogger("search.tracking.writer")
    monkeypatch.setattr(driver_log, "propagate", False)
    monkeypatch.setattr(driver_log, "handlers", [caplog.handler])
    space = load_space(write_space(tmp_path, "writer", n=2, steps=40, mlflow={"sample_images": 0}))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_parent(uri, "writer", "writer", params={}, tags={})
    drawn = space.valid_samples(1, 0)[0]
    writer = mlflow_writer(uri, parent, space)
    writer.send("start", "t1", drawn)
    writer.send("result", "t1", drawn, *metrics(1, 199.0))
    writer.send("result", "t1", drawn, 2, 20, 0, {METRIC: lambda: None})   # cannot be pickled: dropped on the driver
    writer.send("result", "t1", drawn, 3, 30, 0, {METRIC: FailsToLoad()})  # cannot be read back: dropped by the writer
    writer.send("result", "t1", drawn, *metrics(4, 196.0))
    writer.close()
    err = capfd.readouterr().err
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]  # the driver's side
    assert len(said) == 1 and "could not log a result of trial t1: it cannot be pickled" in said[0], said
    assert "could not read a message (invalid literal for int()" in err, err
    assert "Traceback" not in err
    run = child_runs(uri, parent)["t1"]
    assert [(m.step, m.value) for m in MlflowClient(uri).get_metric_history(run.info.run_id, METRIC)] == [
        (10, 199.0), (40, 196.0)]


def test_a_long_wait_at_close_is_announced_and_its_end_too_a_short_one_is_silent(tmp_path: Path):
    import io
    space = load_space(write_space(tmp_path, "writer", n=2, steps=40, mlflow={"sample_images": 0}))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_parent(uri, "writer", "writer", params={}, tags={})
    drawn = space.valid_samples(1, 0)[0]
    said = io.StringIO()
    writer = mlflow_writer(uri, parent, space)
    writer.send("start", "t1", drawn)
    writer.send("result", "t1", drawn, *metrics(1, 199.0))
    writer.close(notice_after_s=0.0, stream=said)  # the writer takes seconds to start: a wait past 0 s
    lines = said.getvalue().splitlines()
    assert len(lines) == 2 and "logging the trials' last figures and metrics" in lines[0], lines
    assert lines[1].startswith("MLflow: done in ") and all(len(line) <= 80 for line in lines), lines
    run = child_runs(uri, parent)["t1"]  # announced or not, all of it written
    assert [m.value for m in MlflowClient(uri).get_metric_history(run.info.run_id, METRIC)] == [199.0]

    quiet = io.StringIO()
    writer = mlflow_writer(uri, parent, space)
    writer.send("result", "t1", drawn, *metrics(2, 198.0))
    writer.close(notice_after_s=300.0, stream=quiet)
    assert quiet.getvalue() == ""
    assert [m.value for m in MlflowClient(uri).get_metric_history(run.info.run_id, METRIC)] == [199.0, 198.0]
