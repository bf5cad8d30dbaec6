"""Mistakes in a space file as one line: `FILE: KEY.PATH: what is wrong; how to fix it`."""
from __future__ import annotations

import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

from .schema import SpaceFile


class SpaceError(ValueError):
    """A search-space file that cannot be used; one line naming the file, the key and the fix."""


def fail(path: str, where: str, msg: str) -> SpaceError:
    return SpaceError(f"{path}: {where}: {msg}" if where else f"{path}: {msg}")


def _loc_str(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    tags = {"float", "int", "categorical", "repeat", "int-enum", "function-after", "function-before"}
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in tags or "[" in str(item):
            continue  # pydantic's union branch names: not part of the user's key path
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that holds the last key of `loc` (to list its known keys)."""
    tp: Any = SpaceFile
    i = 0
    items = list(loc[:-1])
    while i < len(items):
        item = items[i]
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if item not in tp.model_fields:
                return None
            tp = tp.model_fields[item].annotation
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin is list:
            tp = typing.get_args(tp)[0]
        elif origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        elif origin is Union or str(origin) == "typing.Union":
            options = {getattr(a.model_fields.get("type"), "annotation", None) and typing.get_args(
                a.model_fields["type"].annotation)[0]: a for a in _union_models(tp)}
            if item in options:
                tp = options[item]
            else:
                models = _union_models(tp)
                if not models:
                    return None
                tp = models[0]
                continue
        else:
            return None
        i += 1
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is Union:
        models = _union_models(tp)
        tag = loc[-2] if len(loc) > 1 else None
        for m in models:
            if "type" in m.model_fields and typing.get_args(m.model_fields["type"].annotation)[0] == tag:
                return m
        return models[0] if models else None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _union_models(tp: Any) -> list[type[BaseModel]]:
    out = []
    for a in typing.get_args(tp):
        while typing.get_origin(a) is Annotated:
            a = typing.get_args(a)[0]
        if typing.get_origin(a) is Union:
            out += _union_models(a)
        elif isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
    return out


def pydantic_error(path: str, e: ValidationError) -> SpaceError:
    err = e.errors()[0]
    loc = tuple(err["loc"])
    where = _loc_str(loc)
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        known = ", ".join(k for k in model.model_fields) if model is not None else ""
        hint = f"; known keys here: {known}" if known else "; remove it or fix its spelling"
        return fail(path, where, f"unknown key '{loc[-1]}'{hint}")
    if kind == "missing":
        return fail(path, where, "is required; add it")
    if kind == "union_tag_not_found":
        return fail(path, where, "a searched parameter needs a type: float, int, categorical or repeat "
                                  "(e.g. {type: float, low: 1.0e-4, high: 1.0e-2, log: true})")
    if kind == "union_tag_invalid":
        return fail(path, where, f"type {err['input'].get('type')!r} is not known; use float, int, "
                                  f"categorical or repeat" if isinstance(err.get("input"), dict) else msg)
    if kind == "value_error":
        return fail(path, where, msg.removeprefix("Value error, "))
    if kind == "literal_error":
        return fail(path, where, f"{msg} (got {err.get('input')!r})")
    if kind == "string_pattern_mismatch":
        return fail(path, where, f"{err.get('input')!r} is not a usable name; use letters, digits, '_', '.', '-'")
    shown = err.get("input")
    got = f" (got {shown!r})" if not isinstance(shown, (dict, list)) else ""
    return fail(path, where, f"{msg[0].lower() + msg[1:]}{got}; fix the value")
