"""Bad input to the search commands, as a user types it: one line `error: ...`, exit status 2, before
Ray starts, and nothing already written changed."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT  # noqa: E402
QUICKSTART = str(ROOT / "spaces" / "quickstart.yaml")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    (d / "notutf.yaml").write_bytes(b"\xff\xfe experiment: {}")
    (d / "folder.yaml").mkdir()
    (d / "empty.yaml").write_text("")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    # a key written twice: YAML would keep the last one silently
    (d / "twice.yaml").write_text(Path(QUICKSTART).read_text().replace("  max_concurrent: 2", "  max_concurrent: 2\n  max_concurrent: 1"))
    # a search folder whose own files are damaged
    for name, info, ledger in [("badinfo", "{not json", None), ("listinfo", "[1, 2]", None),
                               ("badledger", None, '{"trials": [1]}')]:
        folder = d / "results" / name
        folder.mkdir(parents=True)
        if info is None:
            info = json.dumps({"name": name, "space_file": QUICKSTART, "cwd": str(d), "storage": str(d / "results"),
                               "experiment_dir": str(folder), "num_samples": 8,
                               "tracking": {"mlflow": {"tracking_uri": f"sqlite:///{d}/m.db", "experiment": name,
                                                       "parent_run_id": None}},
                               "max_concurrent": 2, "strategy": "tpe+asha",
                               "optuna_storage": str(folder / "optuna.journal"), "optuna_study": name})
            (folder / "space.yaml").write_text(Path(QUICKSTART).read_text())
        (folder / "search.json").write_text(info)
        if ledger is not None:
            (folder / "trials.json").write_text(ledger)
    return d


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


CASES = [
    # an address where no cluster listens answers in seconds, not after Ray's minute of retries
    (["search.run", QUICKSTART, "--address", "127.0.0.1:9", "--storage", "/tmp/x"], "no Ray cluster answers there"),
    (["search.run", QUICKSTART, "--address", "nohost", "--storage", "/tmp/x"], "give auto, HOST:PORT"),
    # an object store that cannot be reached (no network, no such bucket) is one line, not a traceback
    (["search.run", QUICKSTART, "--storage", "s3://matnet-no-such-bucket/searches"], "s3://matnet-no-such-bucket"),
    (["search.run", "notutf.yaml"], "not UTF-8"),
    (["search.run", "twice.yaml", "--dry-run"], "the key 'max_concurrent' is written twice"),
    (["search.run", "folder.yaml"], "is a folder"),
    (["search.run", "missing.yaml"], "no such file"),
    (["search.run", "empty.yaml"], "must be a mapping"),
    (["search.run", "list.yaml"], "must be a mapping"),
    (["search.run", QUICKSTART, "--num-samples", "0"], "--num-samples must be at least 1"),
    (["search.run", QUICKSTART, "--max-concurrent", "-1"], "--max-concurrent must be at least 0"),
    (["search.run", QUICKSTART, "--name", "a b"], "--name"),
    (["search.run", QUICKSTART, "--num-samples", "x"], "invalid int value"),
    (["search.run", QUICKSTART, "--resume", "--storage", "results", "--name", "nothing"], "there is no search"),
    (["search.run", QUICKSTART, "--resume", "--storage", "results", "--name", "badinfo"], "not valid JSON"),
    (["search.run", QUICKSTART, "--resume", "--storage", "results", "--name", "listinfo"], "not a search description"),
    (["search.run", QUICKSTART, "--storage", "results", "--name", "badinfo"], "already exists"),
    (["search.run", QUICKSTART, "--tracking-uri", "nope://x"], "is not one MLflow knows"),
    (["search.export", "results/nothing"], "no search.json"),
    (["search.export", "notutf.yaml"], "no search.json"),
    (["search.export", "results/badinfo"], "not valid JSON"),
    (["search.export", "results/listinfo"], "not a search description"),
    (["search.export", "results/badledger"], "not a trial ledger"),
    (["search.export", "results/badledger", "--samples", "0"], "--samples must be >= 1"),
    (["search.bench", "compare", QUICKSTART, "--budget", "0"], "must be at least 1"),
    (["search.bench", "compare", QUICKSTART, "--budget", "10", "--strategies", "grid"], "--strategies"),
    (["search.bench", "compare", QUICKSTART, "--budget", "10", "--json", "no/such/x.json"], "does not exist"),
    (["search.bench", "--trials", "0"], "argument --trials: must be an integer >= 1"),
]


@pytest.mark.parametrize("args, says", CASES, ids=[" ".join(a[:1] + [Path(x).name for x in a[1:]]) for a, _ in CASES])
def test_one_line_exit_2_nothing_changed(corpus, args, says):
    before = digest(corpus)
    r = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=corpus, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert says in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert digest(corpus) == before
