"""A study database that stops answering (a PostgreSQL restarted, a network blip) is waited for; one
that stays away stops the search.

Optuna's RDB storage does not retry: a lost connection is an exception in the searcher, which Tune's
loop would end on with a traceback. The searcher (searcher.py) runs each of its study calls through
`patiently`: on a connection error it says so in one line and tries again with a growing pause,
Tune's loop waiting meanwhile (it can neither start a trial nor record a result without the study),
and says when the database answers again. After STUDY_WAIT_S without an answer the search stops
(faults.SearchStopped), cleanly: trials and MLflow runs end as after an interruption, and --resume
goes on once the database is back.
"""
from __future__ import annotations

import os
import time
from typing import Callable, TypeVar

from .faults import SearchStopped
from .progress import say

T = TypeVar("T")
WAIT_ENV = "MATNET_STUDY_WAIT_S"
STUDY_WAIT_S = 300.0  # how long a search waits for its study's database before it stops
FIRST_PAUSE_S, LONGEST_PAUSE_S = 1.0, 15.0


def connection_lost(error: BaseException) -> str | None:
    """What the database driver said, when `error` (or what caused it) is a connection that failed
    rather than a bad request; None otherwise."""
    try:
        from sqlalchemy import exc
    except ImportError:  # no SQLAlchemy: no database storage
        return None
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (exc.OperationalError, exc.InterfaceError)) or (
                isinstance(e, exc.DBAPIError) and e.connection_invalidated):
            said = str(getattr(e, "orig", None) or e).strip()
            return (said.splitlines() or [type(e).__name__])[0][:160]
        e = e.__cause__ or e.__context__
    return None


def wait_limit() -> float:
    try:
        return float(os.environ.get(WAIT_ENV, STUDY_WAIT_S))
    except ValueError:
        return STUDY_WAIT_S


def patiently(where: str, call: Callable[[], T]) -> T:
    """`call()`, tried again while the database at `where` does not answer, up to wait_limit()."""
    pause, since = FIRST_PAUSE_S, None
    while True:
        try:
            answer = call()
        except Exception as error:  # noqa: BLE001 - only a lost connection is waited for
            first = connection_lost(error)
            if first is None:
                raise
            now = time.monotonic()
            if since is None:
                since = now
                say(f"search: the study's database at {where} does not answer ({first}); waiting for it "
                    f"(up to {wait_limit():.0f} s)")
            if now - since >= wait_limit():
                raise SearchStopped(f"the study's database at {where} has not answered for {now - since:.0f} s "
                                    f"({first}); start it, then resume") from None
            time.sleep(pause)
            pause = min(2 * pause, LONGEST_PAUSE_S)
            continue
        if since is not None:
            say(f"search: the study's database answers again (after {time.monotonic() - since:.0f} s)")
        return answer
