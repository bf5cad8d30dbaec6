"""The strategy registry: every module of this package defines one search strategy (base.py says
what that is) and registers it by name; adding a strategy is adding a module here.

    strategies.names()            the registered names, in the order --help lists them
    strategies.get("tpe+asha")    a strategy by name
    strategies.for_space(space)   the strategy a space file asks for, checked against the space

A space names its strategy with `strategy: NAME`. A file without it keeps the older keys: the pair
(sampler.type, scheduler.type) names one of the first four below; with neither, the default.
Nothing here imports Ray: a wrong name or a space a strategy cannot run is one line before Ray starts.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ...space.errors import fail
from .base import Strategy

# random+asha: on the table replay of 150 configurations recorded with 3-5 seeds each (seeds 0-19),
# no strategy returned a better configuration at 10, 30 or 100 full trials, and in real paired
# searches it was ahead (docs/strategies.md: docs/simulate-tuning.json, docs/compare-paired-1600.json).
DEFAULT = "random+asha"
# (sampler.type, scheduler.type) of a file that names no strategy -> the strategy it meant.
BY_OLD_KEYS = {("random", "none"): "random", ("random", "asha"): "random+asha", ("tpe", "none"): "tpe",
               ("tpe", "asha"): "tpe+asha"}

_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: registers a Strategy subclass under its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two search strategies are named {cls.name!r}: {_REGISTRY[cls.name]} and {cls}")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def names() -> list[str]:
    order = ["random", "random+asha", "tpe", "tpe+asha"]
    return [n for n in order if n in _REGISTRY] + sorted(n for n in _REGISTRY if n not in order)


def get(name: str) -> Strategy:
    if name not in _REGISTRY:
        raise KeyError(f"no search strategy {name!r}; use one of {', '.join(names())}")
    return _REGISTRY[name]()


def name_for(space: Any) -> str:
    """The strategy name a space file asks for (SpaceError when it names none that is registered, or
    names one and contradicts it with sampler.type / scheduler.type)."""
    settings = space.settings
    old = (settings.sampler.type, settings.scheduler.type)
    explicit = ("type" in settings.sampler.model_fields_set) or ("type" in settings.scheduler.model_fields_set)
    if settings.strategy is None:
        # neither key written: the default (the schema's own defaults of the two keys are not a choice)
        return BY_OLD_KEYS.get(old, DEFAULT) if explicit else DEFAULT
    given = settings.strategy
    if isinstance(given, dict):
        if not isinstance(given.get("name"), str):
            raise fail(space.path, "strategy.name", f"missing; give the strategy's name (one of {', '.join(names())}) "
                                                    f"beside its options")
        given = given["name"]
    if given not in _REGISTRY:
        raise fail(space.path, "strategy", f"{given!r} is not a registered strategy; use one of {', '.join(names())}")
    if explicit and BY_OLD_KEYS.get(old) != given:
        raise fail(space.path, "strategy", f"{given} contradicts sampler.type: {old[0]} / scheduler.type: {old[1]}; "
                                           f"drop those two keys (the strategy decides both)")
    if isinstance(settings.strategy, dict) and len(settings.strategy) > 1 and _REGISTRY[given].Options is None:
        extra = next(k for k in settings.strategy if k != "name")
        raise fail(space.path, f"strategy.{extra}", f"{given} takes no options; drop it")
    return given


def for_space(space: Any, name: str | None = None) -> Strategy:
    """The strategy of `space` (or `name`, e.g. search.bench compare's), checked against the space."""
    strategy = get(name) if name is not None else get(name_for(space))
    if strategy.Options is not None:
        space.strategy_options(strategy.Options)  # its options first: a later check may read them
    strategy.check(space)
    return strategy


def help_text() -> str:
    """The registered strategies, a line each (search.run --help)."""
    width = max(len(n) for n in names())
    return "\n".join(f"  {n:<{width}}  {_REGISTRY[n].summary}" + ("  (the default)" if n == DEFAULT else "")
                     for n in names())


_discover()

__all__ = ["DEFAULT", "Strategy", "for_space", "get", "help_text", "name_for", "names", "register"]
