"""A strategy as the benchmarks take it: `NAME`, or `NAME[section.key=value;...]` with some of the
space file's settings changed for it (e.g. tpe+asha[scheduler.grace_period=2;sampler.n_startup_trials=8]),
to try a strategy's settings without a space file of their own."""
from __future__ import annotations

from typing import Any

import yaml


def parse(spec: str) -> tuple[str, list[tuple[str, str, Any]]]:
    """(the registered name, [(section, key, value)]); values are read as YAML (2 -> 2, false -> False)."""
    name, _, rest = spec.partition("[")
    changes = []
    for item in rest.rstrip("]").replace(";", ",").split(",") if rest else []:
        key, _, value = item.partition("=")
        section, _, setting = key.strip().partition(".")
        changes.append((section, setting, yaml.safe_load(value)))
    return name.strip(), changes


def apply(raw: dict[str, Any], changes: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """The parsed space file `raw` with the changes made (sections copied, not shared)."""
    for section, setting, value in changes:
        raw[section] = {**(raw.get(section) or {}), setting: value}
    return raw
