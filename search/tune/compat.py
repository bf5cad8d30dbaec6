"""Every private name of Ray, Tune or Optuna that the project touches, in one place.

Each is pinned to the library versions in pyproject.toml and guarded by a test
(tests/test_search_compat.py) that fails loudly, naming the change, when an upgrade moves it.
Everything else in search/ uses the libraries' public APIs only.
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
#   driver's error listener looks up by name each time (pid "raylet"); no setting turns them off.
RAYLET_NOTICES_TOLD = ("A worker died or was killed while executing a task",)


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
    original = worker.print_to_stdstream
    if getattr(original, "drops_told", False):
        return

    def print_untold(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") == "raylet":
            lines = [line for line in data.get("lines", []) if not line.startswith(RAYLET_NOTICES_TOLD)]
            if not lines:
                return
            data = {**data, "lines": lines}
        original(data, ignore_prefix)

    print_untold.drops_told = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = print_untold
