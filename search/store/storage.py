"""Where a search keeps its files: a local folder or a URI (s3://, gs://, abfs://, file://), reached
through pyarrow's file systems (the same ones Ray Tune writes trial checkpoints with).

Every write here is whole-or-nothing: a text file is written beside its target and renamed over it;
a folder is replaced through matnet.checkpoint's atomic swap when local. Object stores have no
rename, so there a folder is deleted and uploaded again (their single-object writes are atomic).
"""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def is_uri(path: str) -> bool:
    return "://" in str(path)


def _fs(path: str):
    """(pyarrow file system, path on it) for a URI or a local path."""
    import pyarrow.fs as pafs
    if is_uri(path):
        return pafs.FileSystem.from_uri(str(path))
    return pafs.LocalFileSystem(), str(Path(path).resolve())


ANSWER_WITHIN_S = 10.0


def check_reachable(path: str, flag: str = "--storage") -> None:
    """A URI's file system must answer within seconds (an object store without network or credentials
    retries for minutes in pyarrow); RunError (one line) otherwise. Local paths pass."""
    import threading

    from .errors import RunError
    if not is_uri(path):
        return
    outcome: dict[str, BaseException | None] = {}

    def probe() -> None:
        try:
            fs, fs_path = _fs(path)
            fs.get_file_info(fs_path)
            outcome["error"] = None
        except BaseException as e:  # noqa: BLE001 - reported below, as one line
            outcome["error"] = e

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(ANSWER_WITHIN_S)
    if "error" not in outcome:
        raise RunError(f"{flag} {path}: the storage does not answer within {ANSWER_WITHIN_S:g} s; check the network, "
                       f"the bucket and its credentials (e.g. AWS_PROFILE, AWS_REGION)")
    error = outcome["error"]
    if error is not None:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise RunError(f"{flag} {path}: the storage cannot be used ({first}); check the URI, the network and its "
                       f"credentials")


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts]) if is_uri(base) else str(Path(base, *parts))


def exists(path: str) -> bool:
    if not is_uri(path):
        return Path(path).exists()
    import pyarrow.fs as pafs
    fs, fs_path = _fs(path)
    return fs.get_file_info(fs_path).type != pafs.FileType.NotFound


def list_files(path: str) -> list[str]:
    """The names of the files directly in the folder `path` (none when it does not exist)."""
    import pyarrow.fs as pafs
    fs, fs_path = _fs(path)
    infos = fs.get_file_info(pafs.FileSelector(fs_path, allow_not_found=True))
    return sorted(Path(info.path).name for info in infos if info.type == pafs.FileType.File)


def file_stamps(path: str) -> dict[str, tuple[int, int]]:
    """(modification time in ns, size) of each file directly in the folder `path`: what tells that a
    file changed, on a local disk or an object store alike."""
    import pyarrow.fs as pafs
    fs, fs_path = _fs(path)
    infos = fs.get_file_info(pafs.FileSelector(fs_path, allow_not_found=True))
    return {Path(i.path).name: (int(i.mtime_ns or 0), int(i.size or 0)) for i in infos if i.type == pafs.FileType.File}


@contextmanager
def open_bytes(path: str) -> Iterator[BinaryIO]:
    fs, fs_path = _fs(path)
    with fs.open_input_stream(fs_path) as f:
        yield f


def read_text(path: str) -> str:
    if not is_uri(path):
        return Path(path).read_text()
    fs, fs_path = _fs(path)
    with fs.open_input_stream(fs_path) as f:
        return f.read().decode()


def write_text(path: str, text: str) -> None:
    if not is_uri(path):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        try:
            tmp.write_text(text)
            tmp.replace(target)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk: the target keeps what it held, and no stray copy stays
            raise
        return
    fs, fs_path = _fs(path)
    fs.create_dir(fs_path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(fs_path) as f:
        f.write(text.encode())


def replace_dir(local: Path, dest: str) -> None:
    """Make `dest` a copy of the local folder `local`, replacing what was there."""
    if not is_uri(dest):
        from matnet.checkpoint import swap_in
        target = Path(dest)
        staged = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(local, staged)
        swap_in(staged, target)
        return
    import pyarrow.fs as pafs
    fs, fs_path = _fs(dest)
    try:
        fs.delete_dir(fs_path)
    except (OSError, FileNotFoundError):
        pass
    fs.create_dir(fs_path, recursive=True)
    pafs.copy_files(str(local), fs_path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


@contextmanager
def local_copy(path: str) -> Iterator[Path]:
    """A local folder with the contents of `path`: the folder itself when local, else a temporary
    download (removed afterwards)."""
    if not is_uri(path):
        yield Path(path)
        return
    import pyarrow.fs as pafs
    fs, fs_path = _fs(path)
    with tempfile.TemporaryDirectory(prefix="matnet-") as tmp:
        local = Path(tmp) / Path(fs_path).name
        pafs.copy_files(fs_path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        yield local


def relative_to(path: str, base: str) -> str | None:
    """`path` (a path on `base`'s file system, as Tune reports checkpoint paths) relative to `base`,
    or None when it lies elsewhere."""
    _, base_path = _fs(base)
    _, full = _fs(path) if not is_uri(base) else (None, str(path))
    base_path, full = base_path.rstrip("/"), full.rstrip("/")
    if full == base_path or not full.startswith(base_path + "/"):
        return None
    return full[len(base_path) + 1:]
