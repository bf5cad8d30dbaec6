"""The strategy registry (base.py says what a strategy is). Samplers (samplers.py) and schedulers
(schedulers.py) are registered once each, and every pair is a strategy named SAMPLER+SCHEDULER
(`tpe+asha`; with the scheduler `none`, the sampler's name alone: `tpe`). A strategy that is more than
a pair (pbt.py) is a module of this package with `@register`. Adding a sampler or a scheduler adds
its pairs; adding a module adds its strategy.

    strategies.names()            the strategies' names, in the order --help lists them
    strategies.get("tpe+asha")    a strategy by name
    strategies.for_space(space)   the strategy a space file asks for, checked against the space

A space names its strategy with `strategy: NAME`, or with the pair `sampler.type` and `scheduler.type`;
with neither, the default. Nothing here imports Ray: a wrong name or a space a strategy cannot run is
one line before Ray starts.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

from ...space.errors import fail
from .base import Strategy

# random+asha: on the table replay of 150 configurations recorded with 3-5 seeds each (seeds 0-19),
# no strategy returned a better configuration at 10, 30 or 100 full trials, and in real paired
# searches it was ahead (docs/strategies.md: docs/simulate-tuning.json, docs/compare-paired-1600.json).
DEFAULT = "random+asha"
# Names strategies had before they were composed (recorded in docs/*.json commands): still accepted.
ALIASES = {"hyperband": "random+hyperband"}
NO_SCHEDULER = "none"


@dataclass(frozen=True)
class SamplerPart:
    name: str                    # sampler.type
    summary: str                 # how it draws, in a few words (--help, the dry run)
    make: Callable[..., Any]     # (space, seed=None) -> an Optuna sampler


@dataclass(frozen=True)
class SchedulerPart:
    name: str                    # scheduler.type
    summary: str
    make: Callable[..., Any]     # (space, seed=None) -> a Ray Tune scheduler
    describe: Callable[[Any], str]  # space -> what it does with this space's rungs (the dry run)
    counts_reports: bool = True  # it judges trials at rungs of reports: the space must say how many a trial makes


SAMPLERS: dict[str, SamplerPart] = {}
SCHEDULERS: dict[str, SchedulerPart] = {}
_REGISTRY: dict[str, type[Strategy]] = {}


def register_sampler(part: SamplerPart) -> SamplerPart:
    SAMPLERS[part.name] = part
    return part


def register_scheduler(part: SchedulerPart) -> SchedulerPart:
    SCHEDULERS[part.name] = part
    return part


def pair_name(sampler: str, scheduler: str) -> str:
    return sampler if scheduler == NO_SCHEDULER else f"{sampler}+{scheduler}"


def _pairs() -> dict[str, tuple[SamplerPart, SchedulerPart]]:
    return {pair_name(a, b): (sa, sb) for a, sa in SAMPLERS.items() for b, sb in SCHEDULERS.items()}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: registers a Strategy subclass under its `name`."""
    if (cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls) or cls.name in _pairs():
        raise ValueError(f"two search strategies are named {cls.name!r}: {_REGISTRY.get(cls.name, 'a pair')} and {cls}")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def names() -> list[str]:
    """Every pair, sampler by sampler in registration order (random first: the baseline), then the
    strategies of their own modules."""
    return list(_pairs()) + sorted(n for n in _REGISTRY)


def resolve(name: str) -> str:
    """The strategy's name as this version calls it (an alias resolved); KeyError for no strategy."""
    name = ALIASES.get(name, name)
    if name not in _REGISTRY and name not in _pairs():
        raise KeyError(f"no search strategy {name!r}; use one of {', '.join(names())}")
    return name


def _class(name: str) -> type[Strategy]:
    from .composed import composed
    name = resolve(name)
    pair = _pairs().get(name)
    return composed(*pair, name) if pair else _REGISTRY[name]


def get(name: str) -> Strategy:
    return _class(name)()


def name_for(space: Any) -> str:
    """The strategy name a space file asks for (SpaceError when it names none that is registered, or
    names one and contradicts it with sampler.type / scheduler.type)."""
    settings = space.settings
    given_pair = pair_name(settings.sampler.type, settings.scheduler.type)
    explicit = ("type" in settings.sampler.model_fields_set) or ("type" in settings.scheduler.model_fields_set)
    if settings.strategy is None:
        # neither key written: the default (the schema's own defaults of the two keys are not a choice)
        return given_pair if explicit else DEFAULT
    given = settings.strategy
    if isinstance(given, dict):
        if not isinstance(given.get("name"), str):
            raise fail(space.path, "strategy.name", f"missing; give the strategy's name (one of {', '.join(names())}) "
                                                    f"beside its options")
        given = given["name"]
    try:
        given = resolve(given)
    except KeyError:
        raise fail(space.path, "strategy", f"{given!r} is not a registered strategy; use one of "
                                           f"{', '.join(names())}") from None
    if explicit and given_pair != given:
        raise fail(space.path, "strategy", f"{given} contradicts sampler.type: {settings.sampler.type} / "
                                           f"scheduler.type: {settings.scheduler.type}; drop those two keys "
                                           f"(the strategy decides both)")
    if isinstance(settings.strategy, dict) and len(settings.strategy) > 1 and _class(given).Options is None:
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
    return "\n".join(f"  {n:<{width}}  {_class(n).summary}" + ("  (the default)" if n == DEFAULT else "")
                     for n in names())


_discover()

__all__ = ["DEFAULT", "SAMPLERS", "SCHEDULERS", "SamplerPart", "SchedulerPart", "Strategy", "for_space", "get",
           "help_text", "name_for", "names", "register", "register_sampler", "register_scheduler", "resolve"]
