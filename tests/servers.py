"""Real servers on loopback for the cluster tests: PostgreSQL, an MLflow tracking server on it, and
Ray nodes started with `ray start`. Each is a context manager that stops what it started, even when
the test fails (Ray nodes: the whole process tree of that node, never other Rays on the machine, which
`ray stop` would kill too).

Secrets are made per test: a random PostgreSQL password and a random Ray auth token, each in a file
of the test's own directory, passed to the servers through the environment.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import psutil

from search.bench.postgres import ServerMissing, free_port, postgres_bin  # noqa: F401 - the tests import them from here
from search.bench.postgres import postgres as bench_postgres

BIN = Path(sys.executable).parent


def wait_for(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: exited with {proc.returncode}\n{_tail(log)}")
        try:
            value = check()
            if value:
                return value
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s\n{_tail(log)}")


def required(find) -> None:
    """A program the tests need from the system: skipped without it, except under CI."""
    import pytest
    try:
        find()
    except ServerMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"{e}: CI must install it (.ci/run)")
        pytest.skip(str(e))


def _tail(log: Path | None, n: int = 3000) -> str:
    return log.read_text(errors="replace")[-n:] if log is not None and log.exists() else ""


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """`pid` and every process below it (children found before any is killed, so none is orphaned
    unseen)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)
    psutil.wait_procs(procs, timeout=15)


# ---- PostgreSQL (search/bench/postgres.py runs it) ------------------------------------------------

@contextlib.contextmanager
def postgres(database: str = "mlflow", more: tuple[str, ...] = ()) -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 with password authentication; yields the SQLAlchemy URI of an
    empty database (and makes the databases `more` beside it, e.g. one for Optuna)."""
    with bench_postgres((database, *more)) as server:
        yield server.uri(database)


# ---- MLflow tracking server ---------------------------------------------------------------------

@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, port: int | None = None) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 (at `port`, else a free one) over `backend_uri`, serving artifacts
    from `artifacts`; yields its http:// URI."""
    port = port or free_port()
    log = artifacts.parent / "mlflow-server.log"
    artifacts.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                                 "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
                                 "--workers", "1"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200, 180,
                 "mlflow server", proc, log)
        yield uri
    finally:
        kill_tree(proc.pid, signal.SIGTERM)
        kill_tree(proc.pid)


# ---- Ray nodes ----------------------------------------------------------------------------------

def ray_env(token_file: Path) -> dict[str, str]:
    """The environment of every process of the test cluster: token authentication on, with the
    test's own token (not ~/.ray/auth_token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file),
               RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
               # A lost node is noticed within a few seconds rather than half a minute.
               RAY_health_check_period_ms="1000", RAY_health_check_timeout_ms="2000",
               RAY_health_check_failure_threshold="3")
    return env


class RayNode:
    """One `ray start --block` process; stopping it kills its whole process tree."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path):
        self.name, self.log = name, log
        with open(log, "w") as out:
            self.proc = subprocess.Popen([str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args],
                                         stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        kill_tree(self.proc.pid, sig)


def node_ports() -> tuple[list[str], int]:
    """Ports of its own for every node's agents (the `ray start` arguments, and the port of its
    dashboard agent's HTTP server): several nodes (and other tests' clusters) share this machine, and
    Ray's fixed defaults (52365, ...) would collide; an agent that cannot bind leaves its node
    without a job API."""
    agent = free_port()
    return [f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"], agent


@contextlib.contextmanager
def ray_cluster(root: Path, cpus: tuple[int, ...] = (1, 1), dashboard: bool = False,
                env: dict[str, str] | None = None) -> Iterator[dict]:
    """A head node and len(cpus) - 1 worker nodes on this machine, node i with cpus[i] CPUs; yields
    {"address", "env", "nodes", "dashboard"} once every node has joined. With `dashboard`, the head
    serves Ray's dashboard and job API on 127.0.0.1 (yielded as its http:// address, ready for jobs).
    `env`: more environment for every node (a job's driver runs with its head node's)."""
    root.mkdir(parents=True, exist_ok=True)
    token = root / "ray_token"
    token.write_text(secrets.token_hex(32))
    os.chmod(token, 0o600)
    node_env = {**ray_env(token), **(env or {})}
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Ray's socket paths must stay short: a temp dir of its own directly under /tmp.
    temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    nodes: list[RayNode] = []
    dashboard_url = f"http://127.0.0.1:{free_port()}" if dashboard else None
    head_ports, head_agent = node_ports()
    head_args = ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), f"--num-cpus={cpus[0]}",
                 "--num-gpus=0", f"--temp-dir={temp_dir}", f"--ray-client-server-port={free_port()}", *head_ports]
    if dashboard_url:
        head_args += ["--include-dashboard=true", "--dashboard-host=127.0.0.1",
                      f"--dashboard-port={dashboard_url.rsplit(':', 1)[1]}"]
    else:
        head_args += ["--include-dashboard=false"]
    try:
        nodes.append(RayNode("head", head_args, node_env, root / "ray-head.log"))
        wait_for(lambda: "Ray runtime started" in nodes[0].log.read_text(), 120, "ray head", nodes[0].proc,
                 nodes[0].log)
        for i, n in enumerate(cpus[1:], 1):
            nodes.append(RayNode(f"worker{i}", ["--address", address, "--node-ip-address", "127.0.0.1",
                                               f"--num-cpus={n}", "--num-gpus=0", *node_ports()[0]],
                                 node_env, root / f"ray-worker{i}.log"))
        wait_for(lambda: alive_nodes(address, node_env) == len(cpus), 120, "ray workers joining", nodes[-1].proc,
                 nodes[-1].log)
        if dashboard_url:
            # Jobs go through the head's dashboard agent: submit once it serves.
            wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{head_agent}/api/local_raylet_healthz",
                                                    timeout=3).read() == b"success",
                     120, "the head's dashboard agent", nodes[0].proc, nodes[0].log)
        yield {"address": address, "env": node_env, "nodes": nodes, "dashboard": dashboard_url, "token": token}
    finally:
        for node in reversed(nodes):
            node.stop(signal.SIGTERM)
            node.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def alive_nodes(address: str, env: dict[str, str]) -> int:
    code = ("import ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0
