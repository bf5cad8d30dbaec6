"""Every private name of Ray, Tune or Optuna that the project touches, in one place.

Each is pinned to the library versions in pyproject.toml and guarded by a test
(tests/test_search_compat.py) that fails loudly, naming the change, when an upgrade moves it.
Everything else in search/ uses the libraries' public APIs only.
"""
from __future__ import annotations

import os
import sys

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
