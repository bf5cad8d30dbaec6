"""The tracking URI is checked before Ray starts (a scheme MLflow knows, a store that answers within
seconds) and kept absolute, so that --resume from another folder logs to the same store."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from search.space import SpaceError, check_resume_compatible, load_space
from search.tracking.uri import TrackingUriError, checked_tracking_uri

from tests.helpers import ROOT  # noqa: E402
QUICKSTART = str(ROOT / "spaces" / "quickstart.yaml")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once closed: nothing listens there


@pytest.mark.parametrize("uri, says", [
    (f"http://127.0.0.1:{closed_port()}", "no MLflow tracking server answers there"),
    ("foo://bar", "scheme 'foo' is not one MLflow knows"),
    ("mlruns", "refuses a plain file store"),
    ("file:///tmp/mlruns", "refuses a plain file store"),
    ("sqlite:///no/such/folder/m.db", "does not exist"),
    ("sqlite://", "give a database file"),
    ("postgresql://nobody:secret@127.0.0.1:1/db", "the database does not answer"),
])
def test_a_bad_tracking_uri_is_one_line_within_seconds_before_ray_starts(tmp_path, uri, says):
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "search.run", QUICKSTART, "--storage", str(tmp_path / "r"),
                        "--tracking-uri", uri], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - started
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --tracking-uri") and says in lines[0], r.stderr
    assert "secret" not in r.stderr  # a password in the URI is not printed
    assert elapsed < 30, elapsed  # seconds, not Ray's start and MLflow's minutes of retries
    assert not (tmp_path / "r").exists()  # nothing started: Ray never ran, no search folder


def test_relative_sqlite_paths_become_absolute(tmp_path):
    assert checked_tracking_uri("sqlite:///m.db", str(tmp_path)) == f"sqlite:///{tmp_path}/m.db"
    assert checked_tracking_uri(f"sqlite:///{tmp_path}/m.db") == f"sqlite:///{tmp_path}/m.db"
    (tmp_path / "d.db").mkdir()
    with pytest.raises(TrackingUriError, match="is a folder"):
        checked_tracking_uri("sqlite:///d.db", str(tmp_path))


def test_a_changed_trial_count_in_the_file_is_refused_on_resume(tmp_path):
    text = (ROOT / "spaces" / "quickstart.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text.replace("num_samples: 8", "num_samples: 12"))
    with pytest.raises(SpaceError, match=r"experiment.num_samples: changed from 8 to 12.*--name"):
        check_resume_compatible(load_space(tmp_path / "a.yaml"), load_space(tmp_path / "b.yaml"))


def test_a_password_in_the_tracking_uri_never_reaches_the_search_folder(tmp_path, monkeypatch):
    """It moves into the variable its client reads, and search.json keeps the URI without it."""
    from search.tracking.uri import without_password
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert without_password("postgresql+psycopg://mlflow:s3cr%40t@db:5432/mlflow") == "postgresql+psycopg://mlflow@db:5432/mlflow"
    import os
    assert os.environ["PGPASSWORD"] == "s3cr@t"
    assert without_password("https://alice:pw@mlflow.example.com:8443") == "https://mlflow.example.com:8443"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw"
    with pytest.raises(TrackingUriError, match="mysql URI would be written"):
        without_password("mysql://u:pw@db/mlflow")
    # Through a search's description: search.json holds no password.
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from search.run import SearchOptions, describe_new
        from search.store.folder import SearchFolder
        monkeypatch.chdir(tmp_path)
        space = load_space(ROOT / "spaces" / "quickstart.yaml")
        folder = SearchFolder(str(tmp_path / "r" / "quickstart"))
        uri = f"http://bob:hunter2@127.0.0.1:{server.server_port}"
        info = describe_new(folder, space, SearchOptions(tracking_uri=uri), str(tmp_path / "r"), "tpe+asha")
        folder.write_info(info, space.raw_text)
    finally:
        server.shutdown()
    text = (tmp_path / "r" / "quickstart" / "search.json").read_text()
    assert "hunter2" not in text and f'"http://127.0.0.1:{server.server_port}"' in text


def test_a_search_json_written_before_pluggable_tracking_reads_as_its_mlflow_part(tmp_path):
    """A search started by the version that kept MLflow's three fields at the top of search.json
    resumes and exports to the same runs."""
    import json

    from search.store.folder import SearchFolder
    folder = SearchFolder(str(tmp_path / "old"))
    (tmp_path / "old").mkdir()
    old = {"name": "old", "space_file": "q.yaml", "cwd": str(tmp_path), "storage": str(tmp_path),
           "experiment_dir": str(tmp_path / "old"), "tracking_uri": "sqlite:////x/m.db", "mlflow_experiment": "e",
           "parent_run_id": "abc", "num_samples": 8, "max_concurrent": 2, "strategy": "tpe+asha",
           "optuna_storage": "j", "optuna_study": "old"}
    (tmp_path / "old" / "search.json").write_text(json.dumps(old))
    assert folder.read_info().tracking == {"mlflow": {"tracking_uri": "sqlite:////x/m.db", "experiment": "e",
                                                      "parent_run_id": "abc"}}
    (tmp_path / "old" / "search.json").write_text(json.dumps({**old, "tracking_uri": ""}))  # MLflow was off
    assert folder.read_info().tracking == {}


def test_tensorboard_on_a_search_folder_in_object_storage_needs_a_local_logdir(tmp_path, monkeypatch):
    from search.run import SearchOptions, describe_new
    from search.store.errors import RunError
    from search.store.folder import SearchFolder
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "spaces" / "quickstart.yaml").read_text()
    (tmp_path / "tb.yaml").write_text(text + "\ntensorboard: {enabled: true}\n")
    space = load_space(tmp_path / "tb.yaml")
    options = SearchOptions(tracking_uri=f"sqlite:///{tmp_path}/m.db")
    from search import tracking
    with pytest.raises(RunError, match="set tensorboard.logdir in the space file to a local folder"):
        tracking.describe(space.settings, options.tracking_uri, "quickstart", "s3://bucket/searches/quickstart")
    info = describe_new(SearchFolder(str(tmp_path / "r" / "quickstart")), space, options, str(tmp_path / "r"),
                        "tpe+asha")
    assert info.tracking["tensorboard"] == {"logdir": str(tmp_path / "r" / "quickstart" / "tensorboard")}
    assert info.tracking["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path}/m.db"
