"""search/compat.py holds every private name of Ray, Tune or Optuna the project touches. Each is
checked against the pinned library here, so an upgrade that moves one fails loudly, by name; and
no other file of search/ may use one."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from search.tune import compat
from tests.helpers import ROOT  # noqa: E402

PROBE = """
import json, os
from ray._private import ray_constants
print(json.dumps({"value": ray_constants.ENABLE_RAY_CLUSTER, "env": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}))
"""


def _probe(env_value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    if env_value is not None:
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = env_value
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_rays_single_node_switch_is_where_compat_expects_it():
    """ray._private.ray_constants.ENABLE_RAY_CLUSTER, read from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at
    import (search.compat.ray_loopback_only relies on both; the loopback test in test_search_ray.py
    checks what it does)."""
    assert _probe("0")["value"] is False
    assert _probe("1")["value"] is True


def test_the_switch_reaches_a_ray_imported_before_it(monkeypatch):
    import ray  # noqa: F401 - imported first, as a notebook or a test would
    from ray._private import ray_constants

    from search.tune.compat import RAY_SINGLE_NODE_ENV, ray_loopback_only
    monkeypatch.delenv(RAY_SINGLE_NODE_ENV, raising=False)
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    ray_loopback_only()
    assert ray_constants.ENABLE_RAY_CLUSTER is False and os.environ[RAY_SINGLE_NODE_ENV] == "0"


# A private name of one of the three libraries: a `_private` module, or an attribute with a leading
# underscore on something the libraries own (OptunaSearch._ot_study, ResultGrid._experiment_analysis).
PRIVATE = re.compile(r"\b(ray|tune|optuna)\b[\w.]*\._[a-z]|\._ot_|_experiment_analysis|run_metadata")


def test_no_other_file_of_search_uses_a_private_library_name():
    offenders = []
    for path in sorted((ROOT / "search").rglob("*.py")):
        if path.name == "compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "private library names outside search/compat.py:\n" + "\n".join(offenders)


def test_matnet_imports_no_search_library():
    for path in sorted((ROOT / "matnet").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(ray|optuna|mlflow|search)\b", text, re.M), path


def test_a_trial_is_reopened_by_its_number():
    """search.compat.trial_of_number: Optuna 5's FrozenTrial keeps the storage's trial id as the
    private `_trial_id`, which the public `optuna.trial.Trial(study, trial_id)` needs; the searcher
    reopens trials with it after Tune restores it."""
    import optuna

    from search.tune.compat import trial_of_number
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    first, second = study.ask(), study.ask()
    study.tell(first, 1.0)
    reopened = trial_of_number(study, second.number)
    assert isinstance(reopened, optuna.trial.Trial) and reopened.number == second.number
    reopened.report(0.5, 3)
    study.tell(reopened, 0.25)
    assert study.trials[1].intermediate_values == {3: 0.5} and study.trials[1].value == 0.25


def test_rays_token_notice_comes_from_the_logger_compat_quiets():
    """Ray 2.60 WARNs through this logger that token authentication is on for a new local cluster."""
    import importlib
    module = importlib.import_module(compat.RAY_TOKEN_SETUP_LOGGER)
    assert module.logger.name == compat.RAY_TOKEN_SETUP_LOGGER and hasattr(module, "_warn_token_auth_enabled")


def test_rays_failure_notices_are_where_compat_expects_them(capsys, monkeypatch):
    """quiet_trial_failures relies on Tune logging a failed trial's traceback through
    TUNE_CONTROLLER_LOGGER with TUNE_TRIAL_FAILED, and on the driver's error listener printing the
    raylet's notices through `ray._private.worker.print_to_stdstream`, looked up by name at each
    notice. Other lines still get through."""
    import inspect
    import logging

    from ray._private import worker
    from ray.tune.execution import tune_controller
    assert tune_controller.logger.name == compat.TUNE_CONTROLLER_LOGGER
    assert f'f"{compat.TUNE_TRIAL_FAILED} {{trial}}"' in inspect.getsource(tune_controller)
    assert "print_to_stdstream(" in inspect.getsource(worker.listen_error_messages)
    monkeypatch.setattr(worker, "print_to_stdstream", worker.print_to_stdstream)  # undone after the test
    compat.quiet_trial_failures()
    compat.quiet_trial_failures()  # twice: still one filter, one wrapper
    record = logging.LogRecord(compat.TUNE_CONTROLLER_LOGGER, logging.ERROR, "", 0,
                               "Trial task failed for trial run_trial_1", (), None)
    filters = [f for f in logging.getLogger(compat.TUNE_CONTROLLER_LOGGER).filters if isinstance(f, compat._DropTold)]
    assert len(filters) == 1 and not filters[0].filter(record)
    worker.print_to_stdstream({"lines": ["A worker died or was killed while executing a task by an unexpected "
                                         "system error. To troubleshoot ..."], "pid": "raylet", "is_err": False},
                              ignore_prefix=False)
    worker.print_to_stdstream({"lines": ["the node is low on disk"], "pid": "raylet", "is_err": False},
                              ignore_prefix=False)
    out = capsys.readouterr().out
    assert "A worker died" not in out and "the node is low on disk" in out


def test_the_gcs_lines_about_a_lost_nodes_placement_group_are_dropped_from_the_drivers_log(capsys, monkeypatch):
    """`ray.init(log_to_driver=True)` binds print_to_stdstream into the dispatcher's "ray_print_logs"
    handler; quiet_trial_failures re-binds it (once) through the filter, keeping its keywords."""
    import functools
    import inspect
    import re

    from ray._private import worker
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    assert re.search(rf'add_handler\(\s*"{compat.LOG_HANDLER}",\s*functools\.partial\(print_to_stdstream,',
                     inspect.getsource(worker))
    monkeypatch.setattr(worker, "print_to_stdstream", worker.print_to_stdstream)
    original = worker.print_to_stdstream
    monkeypatch.setattr(dispatcher, "handlers", [(compat.LOG_HANDLER, functools.partial(original, ignore_prefix=True)),
                                                 ("other", lambda data: None)])
    compat.quiet_trial_failures()
    compat.quiet_trial_failures()
    names = [name for name, _ in dispatcher.handlers]
    assert sorted(names) == ["other", compat.LOG_HANDLER]
    handler = dict(dispatcher.handlers)[compat.LOG_HANDLER]
    assert handler.keywords == {"ignore_prefix": True} and handler.func.drops_told
    gcs = "[2026-12-07 15:42:52,616 E 9285 9285] gcs_placement_group_scheduler.cc:273: Failed to remove 1 bundle(s) " \
          "for placement group 83d2 at node 1a8f because the max retry count is reached."
    dispatcher.emit({"lines": [gcs, "the GCS says something else"], "pid": "gcs_server", "is_err": True})
    err = capsys.readouterr().err
    assert "placement group" not in err and "the GCS says something else" in err


def test_a_workers_sigterm_exit_printed_by_the_garbage_collector_is_dropped():
    """Ray's worker handles SIGTERM (its `sigterm_handler`, in main_loop) by raising SystemExit."""
    import inspect

    from ray._private import worker
    assert "def sigterm_handler(" in inspect.getsource(worker.Worker.main_loop)
    block = ["Exception ignored in: <function WeakSet.__init__.<locals>._remove at 0x7f7dfc45e480>",
             "Traceback (most recent call last):",
             '  File "/usr/lib/python3.11/_weakrefset.py", line 39, in _remove', "    def _remove(item, selfref=ref(self)):",
             "", '  File "ray/_private/worker.py", line 1063, in sigterm_handler',
             "    raise_sys_exit_with_custom_error_message(", "SystemExit: 1"]
    assert compat.without_sigterm_exit(["before", *block, "after"]) == ["before", "after"]
    assert compat.without_sigterm_exit(block) == []
    other = ["Exception ignored in: <function f>", "Traceback (most recent call last):", "ValueError: x", "SystemExit: 1"]
    assert compat.without_sigterm_exit(other) == other  # not a SIGTERM's: kept
    assert compat.without_sigterm_exit(["a line"]) == ["a line"]
