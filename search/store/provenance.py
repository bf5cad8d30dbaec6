"""Where Ray Tune's own state files in a search folder came from.

The project reads a search folder through plain files it writes itself (search.json, space.yaml,
trials.json, matnet checkpoints). Tune's resume cannot: `Tuner.restore` unpickles tuner.pkl, the
searcher's and the callbacks' state, and pickled entries of experiment_state-*.json, and unpickling
runs whatever code a file carries. A search folder on shared storage is writable by whoever can
write there, so before a resume the project checks that these files are exactly the ones a search
run by this user wrote: every time Tune saves its state, an HMAC-SHA256 of each file, keyed with a
secret kept outside the folder (MATNET_STATE_KEY_FILE, default ~/.config/matnet-search/state-key,
mode 0600), is written to STORAGE/NAME/state-signatures.json. Tune saves its snapshot into a local
staging folder and a thread copies it into the search folder afterwards, so the signer signs the
staged copy as Tune saves it, before the copy (search/tune/callbacks.py), and a file keeps the
signatures of its last few versions: whichever of them a driver killed at any moment leaves in the
folder, a resume trusts it. A file without a matching signature is refused, with one line. A folder
whose disk refuses the signatures (it went read-only or full right after Tune's save) gets them
beside the key instead (aside_file), which verify also reads.
`--trust-state` resumes anyway (a folder you know is yours: e.g. one started on another machine).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any, Optional

from . import storage
from .disk import refused_write
from .errors import UntrustedStateError
from .folder import SearchFolder
from .tune_files import is_tune_state

SIGNATURES = "state-signatures.json"
# state file -> ((mtime ns, size) of what was read last, its signatures: the newest first)
Signed = dict[str, tuple[tuple[int, int], list[str]]]
KEY_ENV = "MATNET_STATE_KEY_FILE"
# Signatures kept per file. Tune skips copying a save while the copy of the one before is still
# running, so the folder can hold a version two saves old while the newest is signed.
VERSIONS_KEPT = 3


def key_file() -> Path:
    return Path(os.environ.get(KEY_ENV) or Path.home() / ".config" / "matnet-search" / "state-key").expanduser()


def _key() -> bytes:
    path = key_file()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _state_files(folder: SearchFolder) -> list[str]:
    return [name for name in storage.list_files(folder.path) if is_tune_state(name)]


def _digest(key: bytes, path: str) -> str:
    with storage.open_bytes(path) as f:
        mac = hmac.new(key, digestmod=hashlib.sha256)
        for block in iter(lambda: f.read(1 << 20), b""):
            mac.update(block)
    return mac.hexdigest()


def sign(folder: SearchFolder, known: Optional[Signed] = None, source: Optional[str] = None) -> Signed:
    """Sign Tune's state files as they are now in `source` (a local folder Tune stages them in) or
    in the search folder itself; what was signed, by name: (stamp, signatures). A file whose stamp is
    the one in `known` (an earlier call's answer) is not read again; a changed one gets its new
    signature in front of its last VERSIONS_KEPT - 1, and files signed before that `source` lacks keep
    theirs (tuner.pkl lies in the search folder only). The stamps are taken before the files are
    read: a file rewritten meanwhile has a newer stamp than the one returned, so the caller sees it
    changed and signs it again."""
    key = _key()
    known = known or {}
    where = source or folder.path
    signed = dict(known) if source else {}
    for name, stamp in sorted(stamps_in(where).items()):
        stamp_before, digests = known.get(name, ((-1, -1), []))
        if stamp != stamp_before:
            new = _digest(key, storage.join(where, name))
            digests = [new] + [d for d in digests if d != new][:VERSIONS_KEPT - 1]
        signed[name] = (stamp, digests)
    text = json.dumps({n: d for n, (_, d) in signed.items()}, indent=1) + "\n"
    try:
        storage.write_text(folder.file(SIGNATURES), text)
    except OSError as e:
        # A folder whose disk went read-only (or full) after Tune's last save: the signatures go beside
        # the key instead, so that --resume, once the disk is back, can trust that save (verify).
        if refused_write(e) is None or storage.is_uri(folder.path):
            raise
        aside = aside_file(folder)
        aside.parent.mkdir(parents=True, exist_ok=True)
        aside.write_text(text)
    return signed


def aside_file(folder: SearchFolder) -> Path:
    """Where a folder's signatures go when its disk refuses them: beside the key, named by the folder."""
    return key_file().parent / "signatures" / (hashlib.sha256(folder.path.encode()).hexdigest()[:32] + ".json")


def _signatures_aside(folder: SearchFolder) -> dict[str, Any]:
    try:
        found = json.loads(aside_file(folder).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def verify(folder: SearchFolder) -> None:
    """UntrustedStateError unless every state file Tune would read carries this key's signature."""
    files = _state_files(folder)
    hint = "Tune's resume unpickles it, which can run code; resume only a folder you trust, and then pass --trust-state"
    if not storage.exists(folder.file(SIGNATURES)) and not _signatures_aside(folder):
        raise UntrustedStateError(f"{folder.path}: Ray Tune's state there ({', '.join(files) or 'none'}) carries no "
                                  f"signature from a search run with this machine's key ({key_file()}); {hint}")
    try:
        signatures: Any = json.loads(storage.read_text(folder.file(SIGNATURES)))
    except (json.JSONDecodeError, UnicodeDecodeError):
        signatures = None
    except FileNotFoundError:  # only the signatures aside (its disk refused the first of them)
        signatures = {}
    if not isinstance(signatures, dict):
        raise UntrustedStateError(f"{folder.file(SIGNATURES)}: damaged; {hint}")
    key, aside = _key(), None
    for name in files:
        digest = _digest(key, folder.file(name))
        if _matches(signatures.get(name), digest):
            continue
        aside = _signatures_aside(folder) if aside is None else aside
        if not _matches(aside.get(name), digest):
            raise UntrustedStateError(f"{folder.file(name)}: not the file a search run with this machine's key "
                                      f"({key_file()}) saved (changed, or written elsewhere); {hint}")


def _matches(expected: Any, digest: str) -> bool:
    """One of a file's signatures (a list, the newest first; a single one as searches before 2026-12-08
    wrote them) is this digest."""
    expected = [expected] if isinstance(expected, str) else expected
    return isinstance(expected, list) and any(isinstance(e, str) and hmac.compare_digest(e, digest)
                                              for e in expected)


def stamps_in(path: str) -> dict[str, tuple[int, int]]:
    """(modification time, size) of each of Tune's state files in a folder: what tells that Tune saved."""
    return {name: stamp for name, stamp in storage.file_stamps(path).items() if is_tune_state(name)}


def stamps(folder: SearchFolder) -> dict[str, tuple[int, int]]:
    return stamps_in(folder.path)
