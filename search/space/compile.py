"""A space file -> a validated `Space`: read, parse, check the shape (schema.py), then compile every
entry of `search:` into a node (nodes.py), checking on the way that it can set what it names.

What a config key is, and which values it takes, is asked of matnet.config itself (`key_type`,
`item_fields`, `Config.override`): the space keeps no second description of the config.
"""
from __future__ import annotations

import os
from typing import Any

import yaml
from pydantic import ValidationError

from matnet.config import Config, ConfigError, item_fields, key_type
from matnet.presets import preset

from . import checks, yaml_file
from .errors import SpaceError, fail, pydantic_error
from .nodes import Condition, Item, Node, RepeatNode, ScalarNode, Slot, is_distribution, otherwise_of, scale_tag
from .schema import CONDITION_OPS, CategoricalParam, IntParam, RepeatBlock, SpaceFile
from .space import Space


def load_space(path: str | os.PathLike, *, text: str | None = None, cwd: str | None = None) -> Space:
    """Read and validate a space file (or `text`, the file as saved by a search). Relative paths in
    it are relative to `cwd` (default: this process's). Raises SpaceError (one line) on any mistake."""
    where = str(path)
    if text is None:
        from matnet.userfiles import read_text
        text = read_text(path, SpaceError, "give the path of a search-space YAML (e.g. spaces/quickstart.yaml)")
    try:
        raw = yaml_file.parse(text)
    except yaml_file.DuplicateKeyError as e:
        raise SpaceError(f"{where}: line {e.problem_mark.line + 1}: {e.problem}; keep one of them") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpaceError(f"{where}: not valid YAML at {at} ({problem}); fix the syntax there") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{where}: the file must be a mapping with experiment:, base:, search: ...; "
                         f"see spaces/quickstart.yaml")
    try:
        settings = SpaceFile.model_validate(raw)
    except ValidationError as e:
        raise pydantic_error(where, e) from None
    return compile_space(where, settings, text, cwd)


def compile_space(path: str, settings: SpaceFile, text: str, cwd: str | None = None) -> Space:
    base_overrides = checks.base_overrides(path, settings, cwd)
    base = preset(settings.base).with_overrides(base_overrides)
    nodes = _Compiler(path, base, set(base_overrides)).compile(settings)
    space = Space(path, settings, text, base_overrides, nodes)
    checks.check_points(space)
    checks.check_schedule(space)
    checks.check_base(space)
    return space


class _Compiler:
    """Walks `search:` once, in file order, keeping what earlier entries defined and set."""

    def __init__(self, path: str, base: Config, fixed_keys: set[str]):
        self.path = path
        self.base = base
        self.fixed_keys = fixed_keys
        self.defined: dict[str, Any] = {}   # parameter names drawn so far (conditions may refer to them)
        self.setters: dict[str, str] = {}   # config key -> the entry that sets it

    def compile(self, settings: SpaceFile) -> list[Node]:
        nodes: list[Node] = []
        for name, param in settings.search.items():
            where = f"search.{name}"
            key = self._key(where, name, param)
            condition = self._condition(where, param.when)
            if isinstance(param, RepeatBlock):
                node: Node = self._repeat(where, name, key, param, condition)
            else:
                if name in self.defined:
                    raise fail(self.path, where, "defined twice; give the second one another name")
                if key is not None:
                    self._check_values(where, key, param)
                node = ScalarNode(name, key, param, condition, otherwise_of(param))
                self.defined[name] = param
            if key is not None:
                self.setters[key] = name
            nodes.append(node)
        return nodes

    # ---- what an entry sets ----------------------------------------------------------------------
    def _key(self, where: str, name: str, param: Any) -> str | None:
        """The config key an entry sets: `key:`, else its name when dotted, else none (a helper)."""
        if param.key is not None:
            key, at, hint = param.key, f"{where}.key", ""
        elif "." in name:
            key, at, hint = name, where, " (a helper parameter that sets no key is named without dots)"
        else:
            return None
        try:
            key_type(key)
        except ConfigError as e:
            raise fail(self.path, at, f"{key!r} is not a matnet config key ({e}){hint}") from None
        if key in self.setters and not param.when:
            raise fail(self.path, where, f"sets {key}, which search.{self.setters[key]} sets too; keep one, or give "
                                         f"this one a `when` condition (it then overrides the earlier one when it holds)")
        if key in self.fixed_keys and key != "data.data_dir":
            raise fail(self.path, where, f"{key} is also set under fixed/data; remove it there (searched values win)")
        return key

    def _condition(self, where: str, when: dict[str, Any] | None, item: dict[str, Any] | None = None) -> Condition:
        """`when:` refers to parameters defined before this one (or to earlier fields of the same item)."""
        for ref, clause in (when or {}).items():
            if ref not in self.defined and (item is None or ref not in item):
                known = list(self.defined) + list(item or {})
                raise fail(self.path, f"{where}.when.{ref}", f"'{ref}' is not a parameter defined before this one; "
                                                            f"define it earlier in search: or use one of: "
                                                            f"{', '.join(known) or '(none yet)'}")
            if isinstance(clause, dict):
                if len(clause) != 1 or next(iter(clause)) not in CONDITION_OPS:
                    raise fail(self.path, f"{where}.when.{ref}", "a condition is a value, or one of "
                                                                 f"{{{', '.join(o + ': ...' for o in CONDITION_OPS)}}}")
                op, value = next(iter(clause.items()))
                if op in ("in", "not_in") and not isinstance(value, list):
                    raise fail(self.path, f"{where}.when.{ref}.{op}", "must be a list of values")
        return Condition(dict(when or {}))

    def _check_values(self, where: str, key: str, param: Any) -> None:
        """Every value a parameter can take must fit its config key (type, allowed range)."""
        candidates = list(param.choices) if isinstance(param, CategoricalParam) else [param.low, param.high]
        if "otherwise" in param.model_fields_set:
            candidates.append(param.otherwise)
        for value in candidates:
            try:
                self.base.override(key, value)
            except ConfigError as e:
                raise fail(self.path, where, f"value {value!r} does not fit {key} ({e}); change the bounds or "
                                             f"choices") from None

    # ---- repeat blocks ---------------------------------------------------------------------------
    def _repeat(self, where: str, name: str, key: str | None, block: RepeatBlock, condition: Condition) -> RepeatNode:
        if key is None:
            raise fail(self.path, where, "a repeat block must set a list config key (name it model.meta_modules "
                                         "or give key:)")
        fields = item_fields(key)
        if fields is None:
            raise fail(self.path, where, f"{key} is not a list of settings, so it cannot be repeated; use float, int "
                                         f"or categorical")
        scales = self._scales(where, key, block)
        count = self._count(where, name, block, scales)
        self._check_fields(where, key, block, fields)
        items = self._lay_out(where, name, key, block, scales, fields)
        return RepeatNode(name, key, count, items, condition, otherwise_of(block))

    def _scales(self, where: str, key: str, block: RepeatBlock) -> list[int]:
        if block.scales is None:  # the base preset's own layout
            value: Any = self.base.to_dict()
            for part in key.split("."):
                value = value[part]
            return [int(item["scale"]) for item in value]
        scales = list(block.scales)
        if not scales or any(b <= a for a, b in zip(scales, scales[1:])):
            raise fail(self.path, f"{where}.scales", f"{scales} must be non-empty and grow from coarse to fine, "
                                                     f"e.g. [7, 14]")
        return scales

    def _count(self, where: str, name: str, block: RepeatBlock, scales: list[int]) -> int | Any:
        count = block.count
        if isinstance(count, int):
            lowest = highest = count
        elif isinstance(count, IntParam):
            lowest, highest = count.low, count.high
        elif isinstance(count, CategoricalParam):
            if not all(isinstance(c, int) and not isinstance(c, bool) for c in count.choices):
                raise fail(self.path, f"{where}.count.choices", "must be whole numbers")
            lowest, highest = min(count.choices), max(count.choices)
        else:
            raise fail(self.path, f"{where}.count", "must be a whole number or an int/categorical distribution")
        if lowest < 1:
            raise fail(self.path, f"{where}.count", f"must be at least 1 (got {lowest}); raise the lower bound")
        if highest > len(scales):
            raise fail(self.path, f"{where}.count", f"can reach {highest}, but scales has only {len(scales)} entries "
                                                    f"{scales}; list more scales (coarse to fine) or lower the count")
        if not isinstance(count, int):
            count_name = f"{name}.count"
            if count_name in self.defined:
                raise fail(self.path, f"{where}.count", f"{count_name} is defined twice; rename one of them")
            self.defined[count_name] = count
        return count

    def _check_fields(self, where: str, key: str, block: RepeatBlock, fields: list[str]) -> None:
        given = set(block.each)
        unknown = given - set(fields)
        if unknown:
            raise fail(self.path, f"{where}.each.{sorted(unknown)[0]}", f"not a field of {key} items; known: "
                                                                       f"{', '.join(sorted(fields))}")
        missing = set(fields) - given - {"scale"}
        if missing:
            raise fail(self.path, f"{where}.each", f"missing {', '.join(sorted(missing))}; give each a value or a "
                                                   f"distribution")
        if "scale" in given:
            raise fail(self.path, f"{where}.each.scale", "scales come from the block's `scales:` list; remove it here")

    def _lay_out(self, where: str, name: str, key: str, block: RepeatBlock, scales: list[int],
                 fields: list[str]) -> tuple[Item, ...]:
        """One Item per scale, one Slot per field; each field's values checked against the key once."""
        from matnet.data import dataset_info
        size = dataset_info(self.base.data.dataset)[1]
        for scale in scales:
            if scale < 0 or scale > size or (scale > 0 and size % scale):
                raise fail(self.path, f"{where}.scales", f"scale {scale} must divide the image size {size} "
                                                         f"(0: fully connected)")
        earlier: dict[str, Any] = {}  # the item's fields before this one
        conditions: dict[str, Condition] = {}
        for field_name, value in block.each.items():
            at = f"{where}.each.{field_name}"
            if is_distribution(value):
                conditions[field_name] = self._condition(at, value.when, earlier)
                candidates = list(value.choices) if isinstance(value, CategoricalParam) else [value.low, value.high]
            else:
                candidates = [value]
            for candidate in candidates:
                setting = {f: 1 for f in fields}
                setting[field_name] = candidate
                try:
                    self.base.override(key, [setting])
                except ConfigError as e:
                    raise fail(self.path, at, f"value {candidate!r} does not fit ({e}); change it") from None
            earlier[field_name] = value
            if is_distribution(value):
                self.defined.update({f"{name}.{scale_tag(scale)}.{field_name}": value for scale in scales})
        items = []
        for scale in scales:
            slots = []
            for field_name, value in block.each.items():
                param_name = f"{name}.{scale_tag(scale)}.{field_name}"
                if is_distribution(value):
                    slots.append(Slot(field_name, param_name, value, condition=conditions[field_name],
                                      otherwise=otherwise_of(value)))
                else:
                    slots.append(Slot(field_name, param_name, fixed=value))
            items.append(Item(scale, tuple(slots)))
        return tuple(items)
