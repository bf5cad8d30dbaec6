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
