"""Which images a `--limit N` evaluation scores: a seeded sample spread over the whole split.

The first N images of a split are not a fair sample: MNIST's test file holds the 5,000 images of
NIST's SD-3 (written by Census Bureau employees, the cleaner ones) before the 5,000 of SD-1 (written
by students), so a figure on its first 500 images is optimistic against the full-test figures papers
publish. A subset is therefore drawn uniformly without replacement with a generator of its own, from
the split's size and a seed alone: every model scored with the same (split, N, seed) sees the same
images, and the figures record which.
"""
from __future__ import annotations

from typing import Any

import torch

RULE = "sorted(torch.randperm(split_size, generator=torch.Generator().manual_seed(seed))[:n])"


def subset_indices(split_size: int, limit: int, seed: int = 0) -> torch.Tensor:
    """Indices of the images to score, ascending: all of them for limit <= 0 or limit >= split_size."""
    if limit <= 0 or limit >= split_size:
        return torch.arange(split_size)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(split_size, generator=g)[:limit].sort().values


def describe(split_size: int, limit: int, seed: int = 0) -> dict[str, Any] | None:
    """The record of a subset for a figure's JSON (None when the whole split is scored)."""
    if limit <= 0 or limit >= split_size:
        return None
    return {"n": limit, "of": split_size, "seed": seed, "rule": RULE}


def caption(subset: dict[str, Any] | None, split: str = "split") -> str:
    """A few words for a printed table: whether a figure is on the full split."""
    if subset is None:
        return f"full {split}"
    return (f"{subset['n']} of {subset['of']} images, a seeded sample (seed {subset['seed']}): "
            f"NOT the full {split}")
