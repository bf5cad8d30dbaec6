"""Configuration: a Config holds the model layout, the data and the training settings (the sections,
sections.py, say what each setting means); this module reads and writes it and addresses it by key.

A config is data: it is written to `config.json` beside every checkpoint, read back to rebuild the
model, and overridden key by key from the command line (`--set train.lr=5e-4`) or from a search
space. Unknown keys are errors, never silently ignored; a wrong type names the key.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sections import DataConfig, ModelConfig, TrainConfig
from .userfiles import read_json


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the fix."""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path) -> None:
        # Written beside and renamed over: an interrupted write leaves the old file, not half a config.
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        return _build(cls, d, "")

    @classmethod
    def from_json(cls, path: str | Path, fix: str = "fix the file or re-create it") -> "Config":
        """A config file; every way it can be unusable (missing, a folder, not UTF-8, not JSON, not a
        mapping, unknown keys, wrong types) is a ConfigError that names the file."""
        d = read_json(path, ConfigError, fix)
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def override(self, key: str, value: Any) -> "Config":
        """A copy with one dotted key (`train.lr`, `model.meta_modules`) replaced."""
        return self.with_overrides({key: value})

    def with_overrides(self, overrides: dict[str, Any]) -> "Config":
        """A copy with dotted keys replaced, in order, and checked once: a search builds a config from
        dozens of them per trial, and rebuilding the whole config per key was a tenth of the driver's time."""
        if not overrides:
            return self
        d = self.to_dict()
        for key, value in overrides.items():
            key_type(key)  # an unknown key is an error that lists the known ones
            *sections, name = key.split(".")
            node = d
            for part in sections:  # a section an earlier key set whole may be a dataclass: back to settings
                node[part] = dataclasses.asdict(node[part]) if dataclasses.is_dataclass(node[part]) else node[part]
                node = node[part]
            node[name] = value
        return Config.from_dict(d)


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))


@functools.cache
def _hints(tp: type) -> dict[str, Any]:
    """A settings dataclass's field types, resolved once (typing re-resolves them at every call)."""
    return typing.get_type_hints(tp)


def key_type(key: str) -> Any:
    """The declared type of a dotted config key (`train.lr` -> float, `model.meta_modules` ->
    list[MetaModule]). An unknown key raises ConfigError listing the keys known where it went wrong."""
    tp: Any = Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(tp)]
        if part not in names:
            prefix = ".".join(parts[:i])
            known = ", ".join(f"{prefix}.{n}" if prefix else n for n in names)
            raise ConfigError(f"unknown config key '{key}'; known keys: {known}")
        tp = _hints(tp)[part]
        if i < len(parts) - 1 and not dataclasses.is_dataclass(tp):
            raise ConfigError(f"unknown config key '{key}': '{'.'.join(parts[:i + 1])}' is a setting, not a section")
    return tp


def item_fields(key: str) -> list[str] | None:
    """The fields of each item when `key` holds a list of settings (model.meta_modules: scale, width,
    modules, latent_channels), else None."""
    tp = key_type(key)
    if typing.get_origin(tp) is not list or not dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return None
    return [f.name for f in dataclasses.fields(typing.get_args(tp)[0])]


def parse_set(items: list[str]) -> dict[str, Any]:
    """`key=value` strings from the command line; values are read as JSON where they parse
    (numbers, lists, true/false), else kept as strings."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, for example --set train.lr=5e-4")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError as e:
            if v.strip()[:1] in "[{\"":  # meant as JSON (a list, a mapping, a quoted string): say where it breaks
                raise ConfigError(f"--set {k.strip()}: {v!r} is not valid JSON ({e.msg} at character {e.pos + 1}); "
                                  f"fix it there (JSON wants double-quoted names and no trailing comma)") from None
            out[k.strip()] = v
    return out


def _build(tp: Any, value: Any, where: str) -> Any:
    """Rebuild a (nested) dataclass from plain data, checking keys and types on the way."""
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{where or '<root>'}' must be a mapping, got {value!r}")
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            prefix = f"{where}." if where else ""
            raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'; known keys: "
                              f"{', '.join(prefix + n for n in sorted(names))}")
        kwargs = {k: _build(hints[k], v, f"{where}.{k}" if where else k) for k, v in value.items()}
        try:
            return tp(**kwargs)
        except TypeError as e:  # a required field is missing
            raise ConfigError(f"config key '{where or '<root>'}': {e}") from None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{where}' must be a list, got {value!r}")
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key '{where}' must be a list of {len(args)} values, got {value!r}")
        return tuple(_build(a, v, where) for a, v in zip(args, value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{where}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"config key '{where}' must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{where}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool):  # --set train.compile=false parses as JSON false
            return "true" if value else "false"
        if not isinstance(value, str):
            raise ConfigError(f"config key '{where}' must be a string, got {value!r}")
        return value
    return value
