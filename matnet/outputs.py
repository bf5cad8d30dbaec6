"""The files a command writes: checked before it computes anything, written so that a failure never
leaves half a file behind.

    out = check_output(args.json, "--json")                # before the hours of IWAE
    grid = check_output(args.out, "--out", image=True)      # the image format is known from the name
    ...
    write_json(out, result)                                 # atomic: the old file or the new one

A path is refused, as one ConfigError naming the flag, the path and the fix, when it is a folder, when
a folder above it is a file, when the nearest existing folder above it cannot be written to (tried by
creating a file there, not by permission bits: root passes those, a read-only mount does not), when an
image's extension names no format this machine can write, when it lies inside a checkpoint folder (a
checkpoint is replaced whole at every save, and must hold only what training wrote), or when it is one
of the files a training run writes in its run folder. Two outputs of one command may not be the same
file. Folders that do not exist yet are made when the file is written, not when it is checked.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from . import folders
from .config import ConfigError

COMMON_IMAGE_EXTENSIONS = (".png", ".jpg", ".bmp", ".tif", ".webp", ".gif")


def check_output(path: str | Path, flag: str, *, image: bool = False) -> Path:
    """`path` as a file this command can write (see the module docstring); returns it as a Path."""
    text = str(path)
    p = Path(text).expanduser()
    if not text.strip():
        raise ConfigError(f"{flag}: an empty path; give a file name")
    if text.endswith(("/", os.sep)) or p.is_dir():
        example = f"{p / ('grid.png' if image else 'out.json')}"
        raise ConfigError(f"{flag} {text}: is a folder; give a file name, e.g. {example}")
    if image:
        image_format(p, flag)
    _check_not_owned(p, flag)
    if p.exists() and not p.is_file():  # /dev/null, /dev/stdout, a pipe: written in place
        if not os.access(p, os.W_OK):
            raise ConfigError(f"{flag} {text}: cannot be written to; choose another path")
        return p
    check_folder_writable(p.parent, flag, text)
    return p


def check_outputs(*outputs: tuple[str, str | Path | None, bool]) -> list[Path | None]:
    """Several outputs of one command: (flag, path or None, image?) each; none may be the same file."""
    checked = [check_output(path, flag, image=image) if path is not None else None for flag, path, image in outputs]
    seen: dict[Path, str] = {}
    for (flag, _, _), p in zip(outputs, checked):
        if p is None:
            continue
        key = p.resolve()
        if p.exists() and not p.is_file():
            continue  # /dev/null twice is fine
        if key in seen:
            raise ConfigError(f"{flag} and {seen[key]} name the same file {p}; give each its own path")
        seen.setdefault(key, flag)
    return checked


def check_folder_writable(folder: str | Path, flag: str, shown: str | None = None) -> None:
    """Files can be created in `folder`, or in the nearest folder above it that exists (then `folder`
    can be made). `shown`: the path as the user gave it, for the message."""
    folder = Path(folder).expanduser()
    shown = shown or str(folder)
    existing = folder if str(folder) else Path(".")
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {shown}: {existing} is a file, not a folder; choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".matnet-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{flag} {shown}: cannot write in {existing} ({e.strerror or type(e).__name__}); "
                          f"choose a folder you can write to") from None


def _check_not_owned(p: Path, flag: str) -> None:
    """Not inside a checkpoint, not one of a run folder's own files; checked for the path as given and
    for where it leads (a symbolic link is written through: `replacing`)."""
    for path in dict.fromkeys((p.absolute(), p.resolve())):
        owner = folders.enclosing_checkpoint(path.parent)
        if owner is not None:
            raise ConfigError(f"{flag} {p}: inside the checkpoint folder {owner}, which holds only what training "
                              f"writes (each save replaces it whole); write it elsewhere, e.g. next to {owner}")
        if folders.is_run(path.parent) and path.name in folders.RUN_FILES:
            raise ConfigError(f"{flag} {p}: is the run's own {path.name}, which matnet.train writes; choose "
                              f"another name")


def image_format(path: str | Path, flag: str = "--out") -> str:
    """The PIL format an image path names by its extension, if this machine can write it."""
    from PIL import Image

    p = Path(path)
    ext = p.suffix.lower()
    common = ", ".join(COMMON_IMAGE_EXTENSIONS)
    if not ext:
        raise ConfigError(f"{flag} {path}: no file extension, so no image format; end the name in .png "
                          f"(or {common})")
    Image.init()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ConfigError(f"{flag} {path}: '{ext}' is not an image format that can be written; use {common}")
    try:  # the grids are RGB: some formats (XBM, ...) or missing encoders (JPEG 2000) cannot write them
        Image.new("RGB", (2, 2)).save(io.BytesIO(), format=fmt)
    except Exception as e:
        raise ConfigError(f"{flag} {path}: {fmt} images cannot be written here ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); use {common}") from None
    return fmt


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Write to a temporary file beside `path` (same extension), then rename it over `path`: a reader
    (or a crash) sees the old file or the new one, never half of one. Folders are made as needed. A
    symbolic link is written through (its target replaced); a device or pipe (/dev/null, /dev/stdout)
    is written in place."""
    p = Path(path).expanduser()
    if p.exists() and not stat.S_ISREG(p.stat().st_mode):
        yield p
        return
    p = p.resolve() if p.is_symlink() else p
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.tmp-{os.getpid()}{p.suffix}")
    try:
        yield tmp
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    with replacing(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return Path(path)


def write_json(path: str | Path, value: Any) -> Path:
    return write_text(path, json.dumps(value, indent=2) + "\n")
