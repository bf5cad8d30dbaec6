"""The compiled search space: a list of nodes, one per entry of `search:`, in file order.

Each node knows how to draw itself in an Optuna define-by-run function (`draw`), which Optuna
parameters it may create (`distributions`), and what it sets in a trial's matnet config
(`override`). A `repeat` block lays out its items once, when it is compiled (one `Slot` per field
of the item at each scale), and every one of those three walks reads that layout.

Drawn values are kept decoded (a list-valued choice is a list again); Optuna stores a categorical's
list or mapping choices as JSON text (`encode`), since it keeps scalars only.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from .schema import CategoricalParam, FloatParam, IntParam, ScalarParam

Distribution = Union[FloatParam, IntParam, CategoricalParam]


def encode(choice: Any) -> Any:
    """A categorical choice as Optuna stores it: plain scalars stay, lists and mappings become JSON."""
    return choice if choice is None or isinstance(choice, (bool, int, float, str)) else json.dumps(choice)


def decode(dist: Distribution, stored: Any) -> Any:
    """The choice Optuna stored as `stored`, as the space file wrote it."""
    if isinstance(dist, CategoricalParam):
        for choice in dist.choices:
            if encode(choice) == stored:
                return choice
    return stored


def suggest(trial: Any, name: str, dist: Distribution) -> Any:
    """Draw `name` from `dist` with the Optuna trial; returns the decoded value."""
    if isinstance(dist, FloatParam):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntParam):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return decode(dist, trial.suggest_categorical(name, [encode(c) for c in dist.choices]))


def scale_tag(scale: int) -> str:
    """How an item of a repeat block is named: by its scale (14x14; fc for fully connected)."""
    return "fc" if scale == 0 else f"{scale}x{scale}"


@dataclass(frozen=True)
class Condition:
    """`when: {param: value}` or `{param: {op: value}}`: every clause must hold. A clause on a
    parameter this trial did not draw does not hold."""

    clauses: Mapping[str, Any] = field(default_factory=dict)

    def holds(self, values: Mapping[str, Any], item: Mapping[str, Any] | None = None) -> bool:
        for ref, clause in self.clauses.items():
            if item is not None and ref in item:
                value = item[ref]
            elif ref in values:
                value = values[ref]
            else:
                return False
            if not _clause_holds(clause, value):
                return False
        return True


def _clause_holds(clause: Any, value: Any) -> bool:
    if isinstance(clause, dict) and len(clause) == 1:
        op, ref = next(iter(clause.items()))
        compare = {"eq": lambda: value == ref, "ne": lambda: value != ref,
                   "in": lambda: value in ref, "not_in": lambda: value not in ref,
                   "gt": lambda: value > ref, "ge": lambda: value >= ref,
                   "lt": lambda: value < ref, "le": lambda: value <= ref}.get(op)
        if compare is not None:
            try:
                return compare()
            except TypeError:  # e.g. None > 3: the clause does not hold
                return False
    return value == clause


class _Unset(enum.Enum):
    """No `otherwise:` given. An enum member, so that it is still itself after the space is pickled
    and sent to a trial."""
    UNSET = "unset"


_UNSET = _Unset.UNSET


@dataclass
class ScalarNode:
    """One float, int or categorical parameter, drawn when its condition holds; it sets `key`
    (None: a helper parameter that only steers later conditions)."""

    name: str
    key: Optional[str]
    dist: Distribution
    condition: Condition
    otherwise: Any = _UNSET  # what `key` takes when the condition does not hold (unset: the base value)

    def distributions(self) -> dict[str, Distribution]:
        return {self.name: self.dist}

    def draw(self, trial: Any, values: dict[str, Any]) -> None:
        if self.condition.holds(values):
            values[self.name] = suggest(trial, self.name, self.dist)

    def override(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if self.key is None:
            return {}
        if self.name in values:
            return {self.key: values[self.name]}
        return {} if self.otherwise is _UNSET else {self.key: self.otherwise}


@dataclass(frozen=True)
class Slot:
    """One field of one item of a repeat block: drawn as parameter `name` from `dist`, or fixed."""

    field: str
    name: str
    dist: Optional[Distribution] = None
    fixed: Any = None
    condition: Condition = Condition()
    otherwise: Any = _UNSET


@dataclass(frozen=True)
class Item:
    scale: int
    slots: tuple[Slot, ...]


@dataclass
class RepeatNode:
    """A list of settings (model.meta_modules): its length is drawn first (`NAME.count`), then
    every field of every item. A trial with n items uses the last n scales (coarse to fine), so an
    item is named by its scale (`model.meta_modules.14x14.width`) and means the same in every trial."""

    name: str
    key: str
    count: Union[int, Distribution]
    items: tuple[Item, ...]  # one per scale, coarse to fine
    condition: Condition
    otherwise: Any = _UNSET

    @property
    def count_name(self) -> str:
        return f"{self.name}.count"

    def distributions(self) -> dict[str, Distribution]:
        out: dict[str, Distribution] = {}
        if not isinstance(self.count, int):
            out[self.count_name] = self.count
        out.update({slot.name: slot.dist for item in self.items for slot in item.slots if slot.dist is not None})
        return out

    def _used(self, n: int) -> tuple[Item, ...]:
        return self.items[len(self.items) - int(n):]

    def draw(self, trial: Any, values: dict[str, Any]) -> None:
        if not self.condition.holds(values):
            return
        n = self.count
        if not isinstance(n, int):
            n = values[self.count_name] = suggest(trial, self.count_name, self.count)
        for item in self._used(n):
            drawn: dict[str, Any] = {}  # this item's fields so far: conditions may refer to them
            for slot in item.slots:
                if slot.dist is None:
                    drawn[slot.field] = slot.fixed
                elif slot.condition.holds(values, drawn):
                    drawn[slot.field] = values[slot.name] = suggest(trial, slot.name, slot.dist)

    def override(self, values: Mapping[str, Any]) -> dict[str, Any]:
        n = self.count if isinstance(self.count, int) else values.get(self.count_name)
        if n is None or not self.condition.holds(values):
            return {} if self.otherwise is _UNSET else {self.key: self.otherwise}
        settings = []
        for item in self._used(n):
            setting: dict[str, Any] = {"scale": item.scale}
            for slot in item.slots:
                if slot.dist is None:
                    setting[slot.field] = slot.fixed
                elif slot.name in values:
                    setting[slot.field] = values[slot.name]
                elif slot.otherwise is not _UNSET:
                    setting[slot.field] = slot.otherwise
            settings.append(setting)
        return {self.key: settings}


Node = Union[ScalarNode, RepeatNode]


def otherwise_of(param: Any) -> Any:
    """A parameter's `otherwise:` as written, or unset when the file does not give one."""
    return param.otherwise if "otherwise" in param.model_fields_set else _UNSET


def is_distribution(value: Any) -> bool:
    return isinstance(value, ScalarParam)
