"""A PostgreSQL server of its own, on loopback, for the benchmarks (scale.py: MLflow and Optuna on a
real database server) and the cluster tests (tests/servers.py). PostgreSQL refuses to run as root, so
as root it runs as the `postgres` user; the password is made per server and passed through the
environment, never in a URI written down."""
from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


class ServerMissing(RuntimeError):
    """A server program that this machine does not have (CI installs it: see .ci/run)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path:
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name):  # on PATH, maybe as a link (Debian keeps them in /usr/lib/postgresql/V/bin)
            return Path(shutil.which(name)).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise ServerMissing("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return Path(found[-1]).parent


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str
    pg_ctl: tuple[str, ...] = ()  # how to run pg_ctl on this server's data folder (stop / start)

    def uri(self, database: str, password: bool = True, driver: str = "postgresql") -> str:
        secret = f":{self.password}" if password else ""
        return f"{driver}://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server at once, dropping its connections (a crash, or an administrator's restart)."""
        subprocess.run([*self.pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60, check=True)

    def start(self) -> None:
        subprocess.run([*self.pg_ctl, "-w", "-t", "60", "start"], capture_output=True, timeout=90, check=True)


@contextlib.contextmanager
def postgres(databases: tuple[str, ...] = ("mlflow",)) -> Iterator[Postgres]:
    """A PostgreSQL server on 127.0.0.1 with password authentication and the empty `databases`."""
    pg = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="matnet-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    password = secrets.token_urlsafe(16)
    pwfile = root / "password"
    pwfile.write_text(password + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    os.chmod(pwfile, 0o600)
    data, log, port = root / "data", root / "server.log", free_port()

    def run(*cmd: str) -> None:
        r = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PGPASSWORD": password})
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])}: {r.stderr.strip()[-2000:]}")

    run(str(pg / "initdb"), "-D", str(data), "-U", "matnet", f"--pwfile={pwfile}", "--auth=scram-sha-256",
        "-E", "UTF8")
    # The server's options, in its data folder, so that a restart (Postgres.start) listens where it did.
    (data / "postgresql.auto.conf").write_text(f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                                               f"unix_socket_directories = '{root}'\nfsync = off\n")
    if as_user:
        shutil.chown(data / "postgresql.auto.conf", "postgres", "postgres")
    pg_ctl = (*as_user, str(pg / "pg_ctl"), "-D", str(data), "-l", str(log))
    try:
        run(*pg_ctl[len(as_user):], "-w", "-t", "60", "start")
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=port, user="matnet", password=password, dbname="postgres",
                             autocommit=True) as conn:
            for name in databases:
                conn.execute(f"CREATE DATABASE {name}")
        yield Postgres(port, "matnet", password, pg_ctl)
    finally:
        subprocess.run([*as_user, str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
