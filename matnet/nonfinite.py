"""Training that diverged: what is raised when too many updates in a row are not finite."""
from __future__ import annotations


class NonFiniteLossError(RuntimeError):
    """Training diverged: too many updates in a row had a non-finite loss or gradient."""
