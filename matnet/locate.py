"""Where a checkpoint argument points: a folder, or a URI that an installed resolver fetches.

matnet's commands read checkpoint folders. An argument with a scheme (`models:/NAME@champion`,
`runs:/RUN_ID/PATH`, ...) is handed to the resolver that an installed package registers for that
scheme under the entry-point group `matnet.checkpoint_resolvers`: a function URI -> local folder.
The search platform registers `models` and `runs`, which download from MLflow (pyproject.toml), so
matnet itself imports no tracking library and works without one.
"""
from __future__ import annotations

import re
from importlib.metadata import entry_points

from .checkpoint import CheckpointError

RESOLVER_GROUP = "matnet.checkpoint_resolvers"
# A URI scheme (RFC 3986) of two or more letters: one letter is a Windows drive (C:\...).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def checkpoint_folder(argument: str) -> str:
    """The local folder of a checkpoint argument: the argument itself, or what the resolver of its
    scheme fetched. A scheme no installed package resolves, or a resolver that fails, is one line."""
    match = _SCHEME.match(argument)
    if match is None:
        return argument
    scheme = match.group(1)
    found = list(entry_points(group=RESOLVER_GROUP, name=scheme))
    if not found:
        known = sorted({ep.name for ep in entry_points(group=RESOLVER_GROUP)})
        raise CheckpointError(f"{argument}: no installed package opens {scheme}: URIs"
                              + (f" (installed: {', '.join(s + ':' for s in known)})" if known else "")
                              + "; give a checkpoint folder, or install matnet-search (pip install -e .), which opens "
                                "models:/ and runs:/ from MLflow")
    try:
        return str(found[0].load()(argument))
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the resolver met, one line naming the argument
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{argument}: could not be fetched ({first})") from None
