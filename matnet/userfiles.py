"""Reading the files a user hands over (a config, a checkpoint's JSON, a run's metrics): every way such
a read can fail becomes one error that names the file, what is wrong with it and the fix.

The ways: no such file, a folder where a file should be, no permission or another I/O error, bytes that
are not UTF-8, text that is not JSON, JSON of the wrong kind (a list where a mapping belongs). The
caller picks the error class its command shows as one line (ConfigError for a config file,
CheckpointError for a checkpoint's files) and the fix that is right for the file.

Nothing here imports the rest of matnet, so config.py (the bottom layer) can use it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_JSON_KINDS = {dict: "a mapping ({...})", list: "a list ([...])"}


def _kind_of(value: Any) -> str:
    for tp, name in ((dict, "a mapping"), (list, "a list"), (str, "a string"), (bool, "true/false"),
                     (int, "a number"), (float, "a number"), (type(None), "null")):
        if isinstance(value, tp):
            return name
    return type(value).__name__


# Configs, meta.json and metric logs are kilobytes; a path such as /dev/zero must not be read forever.
MAX_BYTES = 64 * 2 ** 20


def read_bytes(path: str | Path, error: type[Exception], fix: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The file's bytes, or `error` naming the file, the reason and `fix`."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise error(f"{path}: larger than {max_bytes // 2 ** 20} MiB, so not a file of this kind; {fix}")
        return raw
    except FileNotFoundError:
        raise error(f"{path}: no such file; {fix}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file; {fix}") from None
    except PermissionError:
        raise error(f"{path}: not readable (permission denied); {fix}") from None
    except OSError as e:  # NotADirectoryError (a parent is a file), EIO, ...
        raise error(f"{path}: cannot be read ({e.strerror or type(e).__name__}); {fix}") from None


def read_text(path: str | Path, error: type[Exception], fix: str) -> str:
    """The file as UTF-8 text (the encoding every file matnet writes is in)."""
    raw = read_bytes(path, error, fix)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start} is {raw[e.start:e.start + 1].hex()}); {fix}") from None


def parse_json(text: str, where: str, error: type[Exception], fix: str, expect: type | None = dict) -> Any:
    """`text` parsed as JSON; with `expect`, it must be of that type (dict or list)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {fix}") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply to read; {fix}") from None
    if expect is not None and not isinstance(value, expect):
        raise error(f"{where}: holds {_kind_of(value)} where {_JSON_KINDS.get(expect, expect.__name__)} "
                    f"belongs; {fix}")
    return value


def read_json(path: str | Path, error: type[Exception], fix: str, expect: type | None = dict) -> Any:
    """A JSON file; with `expect`, its top level must be of that type."""
    return parse_json(read_text(path, error, fix), str(path), error, fix, expect)
