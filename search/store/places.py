"""Where a search's things live, decided in one order, with one rule for credentials.

    the search folder  --storage, else RAY_ADDRESS's cluster rules, else ./ray_results  search_storage
    the Optuna study   --optuna-storage, sampler.storage, OPTUNA_STORAGE, else
                       optuna.journal in the search folder                              study_storage
    the MLflow store   --tracking-uri, mlflow.tracking_uri, MLFLOW_TRACKING_URI, else
                       sqlite:///mlflow.db (search/tracking/uri.py, its checks MLflow's)

Each is the first given (`first_given`) of the command line, the space file, an environment variable,
the default. A password in any of these URIs never reaches a file (search.json, Tune's state): it
moves into the variable its client reads, for this process (`without_password`), and the URI is kept
without it; a resume reads it from there again. A scheme whose client reads no such variable (an
object store's URI, mysql://) is refused with a password in it, in one line.
"""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Optional

from . import storage
from .errors import RunError, StudyError

DEFAULT_STORAGE = "ray_results"
STUDY_ENV = "OPTUNA_STORAGE"
JOURNAL_FILE = "optuna.journal"
# Where a password given in a URI goes: the variables its client reads (user, password). A tracking
# back-end adds its own schemes' (search/tracking/uri.py: a tracking server's).
PASSWORD_ENV: dict[str, tuple[Optional[str], str]] = {"postgresql": (None, "PGPASSWORD")}


def first_given(*candidates: tuple[str, Optional[str]]) -> Optional[tuple[str, str]]:
    """(where, value) of the first candidate given, in the order passed: the flag, the space file's
    key, the environment variable."""
    return next(((where, value) for where, value in candidates if value), None)


def hide_password(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return uri


def without_password(uri: str, where: str, error: type[Exception] = RunError,
                     env: Optional[dict[str, tuple[Optional[str], str]]] = None) -> str:
    """`uri` with its password (if any) moved into the environment variable its client reads (`env`:
    by scheme, default PASSWORD_ENV)."""
    env = PASSWORD_ENV if env is None else env
    try:
        parts = urllib.parse.urlsplit(uri)
        password = parts.password
    except ValueError:  # not a URL (a path with odd characters): nothing to move
        return uri
    if password is None:
        return uri
    scheme = parts.scheme.split("+")[0].lower()
    if scheme not in env:
        raise error(f"{where} {hide_password(uri)}: a password in a {scheme} URI would be written to search.json; "
                    f"drop it from the URI and give it as its driver reads it")
    user_env, password_env = env[scheme]
    os.environ[password_env] = urllib.parse.unquote(password)
    if user_env and parts.username:
        os.environ[user_env] = urllib.parse.unquote(parts.username)
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    else:
        netloc = parts.netloc.replace(f":{password}@", "@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def search_storage(given: Optional[str], address: Optional[str]) -> str:
    """Where searches are kept. Local runs: a folder (default ./ray_results). Clusters: shared storage
    only (trials on other nodes write their checkpoints there)."""
    if given and storage.is_uri(given):
        return without_password(given, "--storage").rstrip("/")
    if address is None:
        return str(Path(given or DEFAULT_STORAGE).expanduser().resolve())
    if not given:
        raise RunError(f"on a Ray cluster (--address {address}) give --storage: trials on other nodes write their "
                       f"checkpoints there, so it must be shared (s3://bucket/path, gs://..., or an absolute path "
                       f"mounted on every node with --shared-storage)")
    path = Path(given).expanduser()
    if not path.is_absolute():
        raise RunError(f"--storage {given} is a relative path on this machine, which other nodes of the cluster "
                       f"cannot reach; use a URI such as s3://bucket/path, or an absolute path on a file system "
                       f"mounted on every node, with --shared-storage")
    return str(path)


def study_storage(cli: Optional[str], space_file: Optional[str], search_dir: str) -> str:
    """Where a new search keeps its study: a journal file in the search folder unless one is given
    (which must then be a folder, not an object store)."""
    from .study import check_storage
    found = first_given(("--optuna-storage", cli), ("sampler.storage", space_file),
                        (STUDY_ENV, os.environ.get(STUDY_ENV)))
    if found:
        return check_storage(found[1], found[0])
    if storage.is_uri(search_dir):
        raise StudyError(f"the search's storage {search_dir} is an object store, which cannot hold the Optuna study; "
                         f"give a database with --optuna-storage (e.g. postgresql+psycopg://USER@HOST:5432/optuna)")
    return storage.join(search_dir, JOURNAL_FILE)
