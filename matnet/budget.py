"""The training budget of a config: how many steps, epochs and evaluations a run makes.

One function answers it for `matnet.train` (which counts the images it loaded) and for the search
platform (which asks before any data is read, to tell ASHA how many reports a full trial makes), so
the two can never disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Config, ConfigError
from .data import training_images


# The config keys a budget is counted from: a search that varies one of them has trials of different
# lengths (and must tell its scheduler the longest).
# Each key data.training_images reads is here: a new one there belongs here too.
BUDGET_KEYS = ("train.epochs", "train.max_steps", "train.eval_every_steps", "train.batch_size",
               "data.train_limit", "data.val_size", "data.dataset", "data.image_folder", "data.binarize",
               "data.data_dir")


@dataclass(frozen=True)
class Budget:
    steps_per_epoch: int  # full batches in one pass over the training split
    total_steps: int      # train.epochs passes, cut at train.max_steps when that is set
    eval_every: int       # steps between evaluations (each one a report and a checkpoint)

    @property
    def evaluations(self) -> int:
        """Evaluations of a run that trains its whole budget; the last one comes at the last step
        even when it is not a multiple of `eval_every`."""
        return max(1, math.ceil(self.total_steps / self.eval_every))

    def is_last(self, step: int) -> bool:
        return step >= self.total_steps


def budget(config: Config, n_train: int | None = None) -> Budget:
    """The budget of `config` with `n_train` training images (default: counted from the data set's
    files without reading the images: data.training_images). A time limit (train.max_minutes) may
    stop a run earlier; that is not known in advance."""
    tc = config.train
    n = training_images(config.data) if n_train is None else n_train
    if tc.batch_size < 1:
        raise ConfigError(f"train.batch_size={tc.batch_size}: must be at least 1")
    steps_per_epoch = n // tc.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"train.batch_size={tc.batch_size} is larger than the training split "
                          f"({n} images); lower it or raise data.train_limit")
    total = tc.epochs * steps_per_epoch
    if tc.max_steps > 0:
        total = min(total, tc.max_steps)
    return Budget(steps_per_epoch, total, tc.eval_every_steps or steps_per_epoch)
