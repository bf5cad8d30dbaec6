"""random: configurations drawn at random (Optuna's RandomSampler), every trial trained to its end.
The baseline every other strategy is measured against (Bergstra & Bengio 2012)."""
from __future__ import annotations

from . import register
from .base import Strategy


@register
class RandomSearch(Strategy):
    name = "random"
    summary = "random draws, every trial trained to the end (the baseline)"
