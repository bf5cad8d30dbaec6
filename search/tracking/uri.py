"""The MLflow tracking URI of a search: where it comes from, and the check before Ray starts.

Where: --tracking-uri, else the space file's mlflow.tracking_uri, else MLFLOW_TRACKING_URI, else
sqlite:///mlflow.db in the working folder (`tracking_uri`; the one place that order is written).
The check: a scheme MLflow knows, a store that answers within seconds, and relative paths made
absolute (search.json keeps the URI, and `--resume` from another folder must find the same store).

A password in the URI never reaches a file: it is moved into the variable its client reads
(MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD for a tracking server, PGPASSWORD for PostgreSQL)
for this process, and the URI kept without it, by the rule every place of a search follows
(search/store/places.py)."""
from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..store import places
from ..store.places import first_given

# Database stores go through SQLAlchemy; a dialect may name its driver (postgresql+psycopg).
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SERVER_SCHEMES = ("http", "https")
ANSWER_WITHIN_S = 5.0
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


class TrackingUriError(RuntimeError):
    """A tracking URI that cannot be used; one line with the fix."""


def tracking_uri(cli_uri: str | None = None, space_uri: str | None = None, cwd: str | None = None) -> str:
    """The tracking URI to use (the order in this module's docstring), checked and made absolute."""
    found = first_given(("--tracking-uri", cli_uri), ("mlflow.tracking_uri", space_uri),
                        ("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI")))
    return checked_tracking_uri(found[1] if found else DEFAULT_TRACKING_URI, cwd)


# A tracking server's client reads its credentials from these (PostgreSQL's: places.PASSWORD_ENV).
SERVER_PASSWORD_ENV = {scheme: ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD") for scheme in SERVER_SCHEMES}


def without_password(uri: str) -> str:
    return places.without_password(uri, "--tracking-uri", TrackingUriError,
                                   {**places.PASSWORD_ENV, **SERVER_PASSWORD_ENV})


def checked_tracking_uri(uri: str, cwd: str | None = None) -> str:
    """`uri` made absolute, without its password, and shown to answer; TrackingUriError (one line)
    otherwise."""
    uri = without_password(uri)
    scheme = urllib.parse.urlparse(uri).scheme.split("+")[0].lower()
    if scheme in SERVER_SCHEMES:
        _check_server(uri)
        return uri.rstrip("/")
    if scheme == "sqlite":
        return _sqlite(uri, cwd)
    if scheme in DATABASE_SCHEMES:
        _check_database(uri)
        return uri
    if scheme in ("databricks", "databricks-uc"):
        return uri  # answered through Databricks' own credentials; nothing to check here without them
    if scheme in ("", "file"):
        raise TrackingUriError(f"--tracking-uri {uri}: MLflow 3.17 refuses a plain file store; use a database "
                               f"file such as sqlite:///mlflow.db, or a tracking server http://HOST:5000")
    raise TrackingUriError(f"--tracking-uri {uri}: scheme {scheme!r} is not one MLflow knows; use sqlite:///PATH.db, "
                           f"http(s)://HOST:PORT (a tracking server) or postgresql://USER@HOST/DB")


def answers(uri: str) -> bool:
    """Whether the tracking server or database at `uri` answers within ANSWER_WITHIN_S (a file store
    is taken to: its disk is the search folder's, watched apart, tune/faults.py)."""
    scheme = urllib.parse.urlparse(uri).scheme.split("+")[0].lower()
    try:
        if scheme in SERVER_SCHEMES:
            _check_server(uri)
        elif scheme in DATABASE_SCHEMES and scheme != "sqlite":
            _check_database(uri)
    except TrackingUriError:
        return False
    return True


def _sqlite(uri: str, cwd: str | None) -> str:
    """sqlite:///relative.db -> sqlite:////absolute/relative.db, its folder present and writable."""
    path_part = uri.split(":///", 1)[1] if ":///" in uri else ""
    if not path_part or path_part.startswith(":memory:"):
        raise TrackingUriError(f"--tracking-uri {uri}: give a database file, e.g. sqlite:///mlflow.db (an in-memory "
                               f"store would lose the search's runs)")
    path = Path(path_part).expanduser()
    if not path.is_absolute():
        path = Path(cwd or os.getcwd()) / path
    folder = path.parent
    if not folder.is_dir():
        raise TrackingUriError(f"--tracking-uri {uri}: folder {folder} does not exist; create it or give another path")
    if path.is_dir():
        raise TrackingUriError(f"--tracking-uri {uri}: {path} is a folder; name a database file in it")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise TrackingUriError(f"--tracking-uri {uri}: {path if path.exists() else folder} is not writable; "
                               f"give a path you can write")
    return f"{uri.split(':///', 1)[0]}:///{path.resolve()}"


def _check_server(uri: str) -> None:
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=ANSWER_WITHIN_S) as answer:
            if answer.status == 200:
                return
            problem = f"HTTP {answer.status}"
    except urllib.error.HTTPError as e:
        problem = f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        problem = str(getattr(e, "reason", e)) or type(e).__name__
    raise TrackingUriError(f"--tracking-uri {uri}: no MLflow tracking server answers there within "
                           f"{ANSWER_WITHIN_S:g} s ({problem}); start it (mlflow server --host 127.0.0.1 --port PORT) "
                           f"or check the address")


def _check_database(uri: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    connect_args = {"connect_timeout": int(ANSWER_WITHIN_S)} if uri.startswith(("postgresql", "mysql")) else {}
    try:
        engine = create_engine(uri, connect_args=connect_args)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except (SQLAlchemyError, ImportError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrackingUriError(f"--tracking-uri {places.hide_password(uri)}: the database does not answer ({first[:200]}); "
                               f"check that it runs and the URI's user, password and database") from None
