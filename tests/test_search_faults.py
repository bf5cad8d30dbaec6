"""Faults a search meets end in one line from the platform and a folder that --resume finishes
(search/tune/faults.py): the disk of the search folder filling up or going read-only mid-search,
the driver killed outright, the study's database and the MLflow tracking server stopped for a while
or for good. Each is injected into a real small search; what the user sees and
what the three stores (trials.json, the Optuna study, MLflow) keep are checked. (A trial's worker
killed, a trial that raises and a node lost are checked in test_search_ray.py and test_cluster.py.)
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search.store.disk import REFUSALS, refused_in_text, refused_write, room, size_text
from search.tune import faults
from search.tune.faults import RoomWatch, SearchStopped, describe, stop_if_refused, stopped_by
from tests import helpers
from tests.helpers import ROOT, mlflow_runs, optuna_study
from tests.servers import free_port, kill_tree, mlflow_server

# ---- the classifier, on the texts Ray and Tune really write --------------------------------------
# A trial's worker killed with SIGKILL (Tune's error.txt, Ray 2.60).
WORKER_DIED = """The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tpid: 6282
The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker
unexpectedly exits with a connection error code 2. End of file. Some common causes include: (1) the process was
killed by the OOM killer due to high memory usage, (2) ray stop --force was called"""
# A trial whose checkpoint could not be copied into a full search folder (pyarrow, through Ray).
DISK_FULL = """ray::ImplicitFunc.train() (pid=3808, ip=127.0.0.1, actor_id=0f08, repr=run_trial)
  File "search/tune/trainable.py", line 168, in report
    tune.report(flat, checkpoint=ckpt)
  File "pyarrow/error.pxi", line 92, in pyarrow.lib.check_status
OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"""
UNAVAILABLE = """ray.exceptions.ActorUnavailableError: The actor f0904154 is unavailable: The actor is temporarily
unavailable: RpcError: RPC error: Socket closed rpc_code: 14. The task may or may not have been executed."""
RAISED = """ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1)
  File "matnet/device.py", line 20, in resolve_device
    raise ConfigError(msg)
matnet.config.ConfigError: train.device=cuda:999: no such CUDA device"""


def test_each_failure_is_told_by_its_probable_cause():
    assert describe(WORKER_DIED).kind == "worker" and "OOM killer" in describe(WORKER_DIED).cause
    assert describe(DISK_FULL) == faults.Failure("disk", "its storage refused a write (no space left)")
    assert describe(RAISED).cause == "it raised matnet.config.ConfigError: train.device=cuda:999: no such CUDA device"
    assert describe("Task was killed due to the node running low on memory.").kind == "memory"
    assert describe("The actor died because its node has died. Node Id: 3ab").kind == "node"
    assert describe("").cause == "it raised an error"
    # A node SIGKILLed: the driver sees the connection close before Ray marks the node dead (CI, 2026-12-07).
    assert describe(UNAVAILABLE).cause.startswith("its worker stopped answering (the connection to it closed")
    assert describe(RAISED, node_lost=True).cause == "its node was lost (it stopped, or stopped answering)"
    assert not faults.node_gone(None) and not faults.node_gone("0" * 56)  # no Ray here: not known, so not gone


def test_a_refused_write_is_found_through_causes_and_text():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/x/trials.json")
        except OSError as e:
            raise RuntimeError("the ledger could not be written") from e
    except RuntimeError as wrapped:
        assert refused_write(wrapped) == errno.ENOSPC
    assert refused_write(OSError("[Errno 28] Error writing bytes to file")) == errno.ENOSPC  # pyarrow's, no errno
    assert refused_write(OSError(errno.EROFS, "Read-only file system")) == errno.EROFS
    assert refused_write(OSError(errno.ENOENT, "No such file or directory")) is None
    assert refused_write(ValueError("No space left on device")) is None  # only an OSError is the disk's
    assert refused_in_text("OSError: [Errno 122] Disk quota exceeded") == errno.EDQUOT
    assert set(REFUSALS) == {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
    assert (size_text(812), size_text(63_912_345), size_text(1.5e9)) == ("812 B", "63.9 MB", "1.5 GB")


def test_the_room_watch_stops_a_search_whose_disk_is_nearly_full_or_read_only(tmp_path, monkeypatch):
    from search.store.disk import Room
    from search.store.folder import SearchFolder
    folder = SearchFolder(str(tmp_path / "s"))
    watch = RoomWatch(folder, max_concurrent=2)
    left = room(folder.path)
    assert left is not None and left.path == str(tmp_path) and left.free > 0 and not left.read_only
    watch.check(running=2)  # this machine's disk has room: nothing happens
    monkeypatch.setattr(faults, "room", lambda path: Room(path, 5_000_000, False))
    with pytest.raises(SearchStopped, match=r"has 5.0 MB left, less than the 64.0 MB the search needs"):
        watch.check(running=2)
    watch.largest_checkpoint = 50_000_000  # two trials may each be writing one that large
    monkeypatch.setattr(faults, "room", lambda path: Room(path, 90_000_000, False))
    with pytest.raises(SearchStopped, match=r"less than the 100.0 MB"):
        watch.check(running=2)
    monkeypatch.setattr(faults, "room", lambda path: Room(path, 10**12, True))
    with pytest.raises(SearchStopped, match="read-only; make it writable"):
        watch.check(running=1)
    with pytest.raises(SearchStopped, match=r"refused a write: no space left"):
        stop_if_refused(folder.path, OSError(errno.ENOSPC, "No space left on device"))
    stop_if_refused(folder.path, OSError(errno.EIO, "Input/output error"))  # not the disk's refusal: goes on
    # Tune may wrap what a callback raised: the stop is found inside.
    try:
        try:
            raise SearchStopped("full")
        except SearchStopped as e:
            raise RuntimeError("Tune failed") from e
    except RuntimeError as wrapped:
        assert stopped_by(wrapped).reason == "full"
    assert stopped_by(RuntimeError("other")) is None


# ---- real searches ---------------------------------------------------------------------------------
TRIALS = 3


def search_space(tmp_path: Path, name: str) -> Path:
    """3 trials of 30 steps, reporting every 10, 2 at a time, none stopped early."""
    space = helpers.small_space(name, n=TRIALS, steps=30, every=10, scheduler={"type": "none"})
    return helpers.write_space(tmp_path, name, space)


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int):
    """A file system of its own at `path` (a tmpfs), so that a test can fill it or make it read-only."""
    path.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def start(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = env or {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for_results(exp_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        if sum(len(f.read_text().splitlines()) for f in exp_dir.glob("run_trial_*/result.json")) >= n:
            return
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} results in {timeout} s")


def the_platforms_lines(out: str) -> list[str]:
    """What was printed, but the status line that a log gets once a minute."""
    return [line for line in out.splitlines() if line.strip() and not line.startswith("search: ")]


def check_stores_agree(exp_dir: Path, uri: str, n: int, study: tuple[str, str] | None = None) -> None:
    """Every trial once, ended, in trials.json, the Optuna study (its journal in the folder, or
    `study`: a database URL and its password) and MLflow, the same ones."""
    ledger = json.loads((exp_dir / "trials.json").read_text())["trials"]
    if study is None:
        study = optuna_study(exp_dir).trials
    else:
        import optuna
        os.environ["PGPASSWORD"] = study[1]
        study = optuna.load_study(study_name=exp_dir.name, storage=study[0]).trials
    _, parents, kids = mlflow_runs(uri)
    assert len(ledger) == len(study) == len(kids) == n, (len(ledger), len(study), len(kids))
    assert all(r["outcome"] in ("completed", "pruned") for r in ledger.values()), ledger
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study)
    assert {t.user_attrs["ray_trial_id"] for t in study} == set(ledger) == {k.data.tags["trial_id"] for k in kids}
    assert [p.info.status for p in parents] == ["FINISHED"] and all(k.info.status == "FINISHED" for k in kids)


def stop_line(out: str, space: Path, disk: Path) -> str:
    """The one line a search stopped by a fault printed, with nothing else but trials' lines."""
    lines = the_platforms_lines(out)
    stop = [line for line in lines if "stopped" in line]
    assert len(stop) == 1 and stop[0].startswith(f"search {space.stem} stopped after"), lines
    assert stop[0].endswith(f"(python -m search.run {space} --resume --storage {disk})"), stop[0]
    assert all(line.startswith(("[", "trial ")) for line in lines if line not in stop), lines
    assert "Traceback" not in out and "ERROR" not in out and "WARNING" not in out, out[-3000:]
    return stop[0]


def resume_to_the_end(cmd: list[str], tmp_path: Path, exp_dir: Path, uri: str) -> None:
    r = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "WARNING" not in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr
    check_stores_agree(exp_dir, uri, TRIALS)
    assert (exp_dir / "best" / "model.safetensors").is_file()
    assert not list(exp_dir.glob("*.tmp")), "a write the disk refused left a stray file"


def run_with_fault(cmd: list[str], tmp_path: Path, exp_dir: Path, fault, env: dict[str, str] | None = None,
                   timeout: float = 600) -> tuple[int, str]:
    """Run the search until it has reported twice, inject `fault`, and return its exit status and
    what it printed."""
    proc = start(cmd, tmp_path, env)
    try:
        wait_for_results(exp_dir, 2, proc)
        fault()
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out


def stopped_mid_search(cmd: list[str], tmp_path: Path, exp_dir: Path, fault) -> str:
    """What a search printed that `fault`, injected once it has reported twice, stopped."""
    from search.run import STOPPED_EXIT
    code, out = run_with_fault(cmd, tmp_path, exp_dir, fault, timeout=300)
    assert code == STOPPED_EXIT, out[-3000:]
    return out


def test_a_full_disk_stops_the_search_in_one_line_and_resume_finishes_it(tmp_path):
    """The search folder's disk fills up mid-search (another program takes all but 8 MB): the search
    stops at once, in one line that names the folder and what to do, no traceback, exit status 75,
    no MLflow run left running; with the space freed, --resume finishes it, every trial once."""
    space = search_space(tmp_path, "full")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with small_disk(tmp_path / "disk", 160) as disk:
        exp_dir = disk / "full"
        cmd = [sys.executable, "-m", "search.run", str(space), "--storage", str(disk), "--tracking-uri", uri]
        filler = disk / "filler"

        def fill() -> None:
            with open(filler, "wb") as f:
                left = room(str(disk)).free - 8_000_000
                while left > 0:
                    left -= f.write(b"\0" * min(left, 1 << 24))
        stop = stop_line(stopped_mid_search(cmd, tmp_path, exp_dir, fill), space, disk)
        # Seen by the room watch ("has 7.9 MB left, less than ..."), or by a write the disk refused first.
        assert f": the disk of {exp_dir} " in stop and "free space there, then resume" in stop, stop
        _, parents, kids = mlflow_runs(uri)
        assert [p.info.status for p in parents] == ["KILLED"] and "RUNNING" not in {k.info.status for k in kids}
        filler.unlink()
        resume_to_the_end(cmd, tmp_path, exp_dir, uri)


def test_a_read_only_disk_stops_the_search_in_one_line_and_resume_finishes_it(tmp_path):
    space = search_space(tmp_path, "frozen")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with small_disk(tmp_path / "disk", 160) as disk:
        exp_dir = disk / "frozen"
        cmd = [sys.executable, "-m", "search.run", str(space), "--storage", str(disk), "--tracking-uri", uri]
        try:
            out = stopped_mid_search(cmd, tmp_path, exp_dir,
                                     lambda: subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True))
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        stop = stop_line(out, space, disk)
        assert f"the file system of {exp_dir} is read-only; make it writable" in stop, stop
        resume_to_the_end(cmd, tmp_path, exp_dir, uri)


def test_a_driver_killed_outright_is_resumed_with_every_trial_once(tmp_path):
    """The driver and its Ray killed with SIGKILL (a machine that lost power, an OOM kill of the
    driver): Tune's last save, signed as it was made, is where --resume goes on."""
    space = search_space(tmp_path, "killed")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = tmp_path / "results"
    cmd = [sys.executable, "-m", "search.run", str(space), "--storage", str(storage), "--tracking-uri", uri]
    proc = start(cmd, tmp_path)
    try:
        wait_for_results(storage / "killed", 4, proc)
    finally:
        kill_tree(proc.pid)  # the driver and the Ray it started, at once
        proc.communicate(timeout=60)
    r = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    check_stores_agree(storage / "killed", uri, TRIALS)


# ---- the study's database ---------------------------------------------------------------------------
def test_a_study_database_that_stops_answering_is_waited_for_then_stops_the_search(monkeypatch, capsys):
    from sqlalchemy.exc import OperationalError

    from search.tune import study_wait
    monkeypatch.setattr(study_wait, "FIRST_PAUSE_S", 0.01)
    lost = OperationalError("SELECT 1", {}, Exception("connection to server at 127.0.0.1 failed: refused"))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("Optuna's wrapper") from lost
        return "told"
    assert study_wait.patiently("postgresql://u@h/optuna", flaky) == "told" and len(calls) == 3
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("search: the study's database at postgresql://u@h/optuna does not answer "
                             "(connection to server at 127.0.0.1 failed: refused); waiting for it (up to 300 s)")
    assert out[1].startswith("search: the study's database answers again") and len(out) == 2

    monkeypatch.setenv(study_wait.WAIT_ENV, "0.05")

    def down():
        raise lost
    with pytest.raises(SearchStopped, match=r"the study's database at postgresql://u@h/optuna has not answered for "
                                            r"\d+ s \(.*refused\); start it, then resume"):
        study_wait.patiently("postgresql://u@h/optuna", down)
    with pytest.raises(ValueError):  # not a lost connection: raised at once
        study_wait.patiently("postgresql://u@h/optuna", lambda: (_ for _ in ()).throw(ValueError("bad value")))


@contextlib.contextmanager
def search_on_postgres(tmp_path: Path, name: str, wait_s: int):
    """A search whose study is on a real PostgreSQL server: (its command, its environment, the server)."""
    from search.bench.postgres import postgres
    space = search_space(tmp_path, name)
    with postgres(("optuna",)) as pg:
        study = pg.uri("optuna", password=False, driver="postgresql+psycopg")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "PGPASSWORD": pg.password,
               "MATNET_STUDY_WAIT_S": str(wait_s)}
        cmd = [sys.executable, "-m", "search.run", str(space), "--storage", str(tmp_path / "results"),
               "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--optuna-storage", study]
        yield cmd, env, pg, study


def test_a_study_database_restarted_mid_search_is_waited_for(tmp_path):
    """Optuna's study on a real PostgreSQL server, stopped for 15 s and started again: the search says
    so when it stops answering and when it answers again, waits, and finishes; nothing is lost."""
    with search_on_postgres(tmp_path, "db", wait_s=120) as (cmd, env, pg, study):
        def restart() -> None:
            pg.stop()
            time.sleep(15)
            pg.start()
        code, out = run_with_fault(cmd, tmp_path, tmp_path / "results" / "db", restart, env)
        assert code == 0, out[-3000:]
        assert "Traceback" not in out and "ERROR" not in out, out[-3000:]
        said = [line for line in out.splitlines() if "study's database" in line]
        assert len(said) == 2 and "does not answer" in said[0] and "answers again" in said[1], out[-3000:]
        check_stores_agree(tmp_path / "results" / "db", cmd[cmd.index("--tracking-uri") + 1], TRIALS,
                           study=(study, pg.password))


def test_a_study_database_gone_for_good_stops_the_search_in_one_line_and_resume_finishes_it(tmp_path):
    """The same server stopped and left down past MATNET_STUDY_WAIT_S: the search stops in one line
    (exit 75); once the server is back, --resume finishes it."""
    from search.run import STOPPED_EXIT
    with search_on_postgres(tmp_path, "gone", wait_s=10) as (cmd, env, pg, study):
        try:
            code, out = run_with_fault(cmd, tmp_path, tmp_path / "results" / "gone", pg.stop, env)
        finally:
            pg.start()
        assert code == STOPPED_EXIT, out[-3000:]
        stop = [line for line in the_platforms_lines(out) if "stopped" in line]
        assert len(stop) == 1 and f"the study's database at {study} has not answered for" in stop[0], out[-3000:]
        assert "start it, then resume" in stop[0] and "Traceback" not in out and "ERROR" not in out, out[-3000:]
        r = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=800)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        check_stores_agree(tmp_path / "results" / "gone", cmd[cmd.index("--tracking-uri") + 1], TRIALS,
                           study=(study, pg.password))


# ---- the tracking server ----------------------------------------------------------------------------
def test_a_tracking_server_that_does_not_answer_through_the_retries_is_gone_and_sent_nothing_more(caplog):
    from search.tracking.trial_runs import TrialRuns, unanswered
    refused = RuntimeError("API request to http://h:5000/api/2.0/mlflow/runs/log-batch failed with exception "
                           "HTTPConnectionPool(host='h', port=5000): Max retries exceeded with url: /api (Caused by "
                           "NewConnectionError(\"Failed to establish a new connection: [Errno 111] Connection "
                           "refused\"))")
    assert unanswered(refused) == "connection refused" and unanswered(ValueError("bad metric")) is None
    runs = TrialRuns.__new__(TrialRuns)  # only what safely() uses: no server to open runs on
    runs.gone, runs.tracking_uri, calls = False, "http://h:5000", []

    def send(error):
        calls.append(error)
        raise error
    assert runs.safely("log a result of", send, ValueError("bad metric")) is None and not runs.gone
    assert runs.safely("log a result of", send, refused) is None and runs.gone
    assert runs.safely("log a result of", send, refused) is None and len(calls) == 2  # not sent again
    told = [r.getMessage() for r in caplog.records]
    assert told == ["MLflow: could not log a result of: bad metric",
                    "MLflow: the tracking server at http://h:5000 does not answer (connection refused); the search "
                    "goes on without it: its trials are in trials.json, and the MLflow runs stop here"], told


def tracked_search(tmp_path: Path, name: str, uri: str) -> tuple[list[str], subprocess.Popen]:
    space = search_space(tmp_path, name)
    cmd = [sys.executable, "-m", "search.run", str(space), "--storage", str(tmp_path / "results"),
           "--tracking-uri", uri]
    proc = start(cmd, tmp_path)
    wait_for_results(tmp_path / "results" / name, 2, proc)
    return cmd, proc


def test_a_tracking_server_restarted_mid_search_loses_nothing(tmp_path):
    """MLflow's client retries a request for about a minute (MLFLOW_HTTP_REQUEST_MAX_RETRIES=5, set by
    the search): a server that is back within it gets every trial, as if it had never left."""
    backend, artifacts, port = f"sqlite:///{tmp_path}/server.db", tmp_path / "artifacts", free_port()
    with mlflow_server(backend, artifacts, port) as uri:
        _, proc = tracked_search(tmp_path, "restarted", uri)
    try:
        time.sleep(15)  # the server is down; the search trains on
        with mlflow_server(backend, artifacts, port):
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, out[-3000:]
            assert "Traceback" not in out and "ERROR" not in out and "WARNING" not in out, out[-3000:]
            assert "does not answer" not in out, out[-3000:]
            check_stores_agree(tmp_path / "results" / "restarted", uri, TRIALS)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)


def test_a_tracking_server_gone_for_good_is_said_once_and_the_search_ends_with_everything_in_its_folder(tmp_path):
    """The search trains on without it (its folder holds every trial and the best); it says so once
    where the trials' runs stop and once at its end, never waiting minutes per request; search.export
    logs the best once the server is back."""
    backend, artifacts, port = f"sqlite:///{tmp_path}/server.db", tmp_path / "artifacts", free_port()
    with mlflow_server(backend, artifacts, port) as uri:
        _, proc = tracked_search(tmp_path, "gone", uri)
    try:
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "ERROR" not in out and "WARNING" not in out, out[-3000:]
    said = [line for line in out.splitlines() if "does not answer" in line]
    assert len(said) == 2 and said[0] == (f"MLflow: the tracking server at {uri} does not answer (connection "
                                          f"refused); the search goes on without it: its trials are in trials.json, "
                                          f"and the MLflow runs stop here"), said
    assert said[1].startswith(f"MLflow: the tracking server at {uri} does not answer; the search's end is not logged "
                              f"there"), said
    exp_dir = tmp_path / "results" / "gone"
    ledger = json.loads((exp_dir / "trials.json").read_text())["trials"]
    assert len(ledger) == TRIALS and all(r["outcome"] == "completed" for r in ledger.values())
    assert (exp_dir / "best" / "model.safetensors").is_file() and (exp_dir / "summary.json").is_file()

    with mlflow_server(backend, artifacts, port):
        r = subprocess.run([sys.executable, "-m", "search.export", str(exp_dir), "--limit", "20", "--samples", "2"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        _, parents, _ = mlflow_runs(uri)
        assert len(parents) == 1 and "best_test_nll_nats" in parents[0].data.metrics, parents[0].data.metrics
