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


def apply(raw: dict[str, Any], changes: list[tuple[str, str, Any]], name: str | None = None) -> dict[str, Any]:
    """The parsed space file `raw` with the changes made (sections copied, not shared). A change of
    `strategy.OPTION` makes `strategy` the mapping {name: NAME, OPTION: value} (NAME: `name`)."""
    for section, setting, value in changes:
        current = raw.get(section) or {}
        if section == "strategy" and not isinstance(current, dict):
            current = {"name": current or name}
        if section == "strategy" and name is not None:
            current = {**current, "name": name}
        raw[section] = {**current, setting: value}
    return raw


# The settings a strategy reads from a space file; without them each strategy runs as a space that
# sets none gets it (the schema's defaults: search/space/schema.py).
STRATEGY_SETTINGS = {"sampler": ("n_startup_trials", "multivariate", "group"),
                     "scheduler": ("grace_period", "reduction_factor", "brackets")}


def schema_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """The parsed space file `raw` without its strategy settings (STRATEGY_SETTINGS), so that the
    benchmarks measure each strategy as a user who sets nothing gets it."""
    for section, keys in STRATEGY_SETTINGS.items():
        raw[section] = {k: v for k, v in (raw.get(section) or {}).items() if k not in keys}
    return raw

