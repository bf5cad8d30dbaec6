"""Every private name of Ray, Tune or Optuna that the project touches, in one place.

Each is pinned to the library versions in pyproject.toml and guarded by a test
(tests/test_search_compat.py) that fails loudly, naming the change, when an upgrade moves it.
Everything else in search/ uses the libraries' public APIs only, but one: the bounded TPE history
(bounded_tpe.py) answers Optuna's private `Study._get_trials`, which its samplers read; its test
(tests/test_search_bounded_tpe.py) fails when TPE stops reading the history through it.
"""
from __future__ import annotations

import os
import sys
from typing import Any

# Ray's switch that keeps a Windows or macOS Ray single-node; set to 0 on Linux it also makes a
# local Ray bind 127.0.0.1 only (GCS, raylet, workers) and register its node under 127.0.0.1.
RAY_SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ray_loopback_only() -> None:
    """Make the next `ray.init` of a private local Ray listen on 127.0.0.1 only.

    Ray reads RAY_SINGLE_NODE_ENV once, at import, into the private constant
    `ray._private.ray_constants.ENABLE_RAY_CLUSTER`, and reads that constant back from the module at
    `ray.init`. So the variable is set for a Ray not imported yet, and the constant for one already
    imported (a test, a notebook). RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 in the environment opts out."""
    os.environ.setdefault(RAY_SINGLE_NODE_ENV, "0")
    if os.environ[RAY_SINGLE_NODE_ENV] == "0" and "ray" in sys.modules:
        from ray._private import ray_constants
        ray_constants.ENABLE_RAY_CLUSTER = False


def trial_of_number(study: Any, number: int) -> Any:
    """The `optuna.Trial` of the study's trial `number`, to report to and tell after the searcher
    was restored (Tune's state keeps trial numbers; `study.ask()` only makes new trials).

    `optuna.trial.Trial(study, trial_id)` is public, but it takes the storage's internal trial id,
    which Optuna 5 exposes only as the private `FrozenTrial._trial_id`."""
    import optuna
    frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if frozen is None:
        raise KeyError(f"the study {study.study_name!r} has no trial number {number}")
    return optuna.trial.Trial(study, frozen._trial_id)


# The logger of Ray's token-authentication setup, which WARNs at every new local cluster that token
# authentication is on (Ray 2.60's default, which the project keeps).
RAY_TOKEN_SETUP_LOGGER = "ray._private.authentication.authentication_token_setup"


def quiet_token_notice() -> None:
    """Keep Ray's default (token authentication on) without its WARNING about that default: a correct
    run prints no warning. (Setting RAY_AUTH_MODE=token instead works only before Ray is imported: Ray
    caches the mode in its C++ config at import.)"""
    import logging
    logging.getLogger(RAY_TOKEN_SETUP_LOGGER).setLevel(logging.ERROR)


# What Ray prints on the driver's terminal about a trial's failure, which the platform says in one
# line of its own (search/tune/faults.py, progress.py); the full text stays in the trial's error.txt
# and Ray's session logs.
# - Tune logs every failed trial's traceback at ERROR through this logger, with this message;
TUNE_CONTROLLER_LOGGER = "ray.tune.execution.tune_controller"
TUNE_TRIAL_FAILED = "Trial task failed for trial"
# - the raylet's notices reach the driver through `ray._private.worker.print_to_stdstream`, which the
#   driver's error listener looks up by name each time (pid "raylet"); no setting turns them off. The
#   GCS's error lines (pid "gcs_server") come through the same function, bound by `ray.init` into the
#   handler "ray_print_logs" of `ray._private.ray_logging.global_worker_stdstream_dispatcher`: a lost
#   node's placement group that cannot be cleaned up on it is one of them, and the platform has told
#   that trial's node loss.
NOTICES_TOLD = {"raylet": ("A worker died or was killed while executing a task",),
                "gcs_server": ("bundle(s) for placement group",)}
LOG_HANDLER = "ray_print_logs"
SIGTERM_HANDLER = "in sigterm_handler"  # a worker's frame in the traceback of its SIGTERM (worker.main_loop)


class _DropTold:
    """A logging filter: Tune's traceback of a failed trial (the platform tells it in one line)."""

    def filter(self, record) -> bool:
        return not str(record.msg).startswith(TUNE_TRIAL_FAILED)


def quiet_trial_failures() -> None:
    """Keep Ray's tracebacks and notices of a failed trial off the terminal (the platform prints one
    line for it, naming the trial, the probable cause and what happens next). Idempotent."""
    import logging

    from ray._private import worker
    tune_logger = logging.getLogger(TUNE_CONTROLLER_LOGGER)
    if not any(isinstance(f, _DropTold) for f in tune_logger.filters):
        tune_logger.addFilter(_DropTold())
    if not getattr(worker.print_to_stdstream, "drops_told", False):
        worker.print_to_stdstream = _untold(worker.print_to_stdstream)
    _route_logs_through(worker.print_to_stdstream)


def _untold(original):
    """`original` (Ray's print_to_stdstream) less the notices the platform has told."""

    def print_untold(data: dict, ignore_prefix: bool) -> None:
        told = NOTICES_TOLD.get(data.get("pid"))
        lines = without_sigterm_exit(data.get("lines", []))
        if told:
            lines = [line for line in lines if not any(notice in line for notice in told)]
        if not lines:
            return
        original({**data, "lines": lines}, ignore_prefix)

    print_untold.drops_told = True  # type: ignore[attr-defined]
    return print_untold


def without_sigterm_exit(lines: list[str]) -> list[str]:
    """`lines` less the "Exception ignored in ... SystemExit: 1" block of a Ray worker that was told to
    exit (SIGTERM: its handler, SIGTERM_HANDLER, raises SystemExit) while the garbage collector ran a
    weak reference's callback: Python cannot raise there and prints it (seen in a finished trial's
    worker, 2026-12-07). The worker exits as it was told; nothing failed."""
    start = next((i for i, line in enumerate(lines) if line.startswith("Exception ignored in")), None)
    if start is None:
        return lines
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("SystemExit")), None)
    if end is None or not any(SIGTERM_HANDLER in line for line in lines[start:end]):
        return lines
    return lines[:start] + without_sigterm_exit(lines[end + 1:])


def _route_logs_through(print_untold) -> None:
    """Re-bind the driver's log handler, which `ray.init(log_to_driver=True)` bound to the original."""
    import functools

    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    for name, handler in list(dispatcher.handlers):
        if name == LOG_HANDLER and isinstance(handler, functools.partial) and \
                not getattr(handler.func, "drops_told", False):
            dispatcher.remove_handler(name)
            dispatcher.add_handler(name, functools.partial(print_untold, **handler.keywords))
