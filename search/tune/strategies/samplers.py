"""The samplers a strategy is composed from: how a search draws configurations (an Optuna sampler
behind the platform's searcher, search/tune/searcher.py). Each is registered once; every sampler
paired with every scheduler (schedulers.py) is a strategy (composed.py)."""
from __future__ import annotations

from typing import Any

from . import SamplerPart, register_sampler


def random_sampler(space: Any, seed: int | None = None) -> Any:
    """Optuna's RandomSampler: the baseline every other draw is measured against (Bergstra & Bengio 2012)."""
    import optuna
    return optuna.samplers.RandomSampler(seed=space.settings.sampler.seed if seed is None else seed)


def tpe_sampler(space: Any, seed: int | None = None) -> Any:
    """Optuna's TPE (Bergstra et al. 2011) as the space's sampler settings ask: multivariate and grouped
    (suits spaces whose trials have different parameters), with constant_liar so that parallel trials
    are not drawn alike."""
    import warnings

    import optuna
    s = space.settings.sampler
    tpe = dict(seed=s.seed if seed is None else seed, n_startup_trials=s.n_startup_trials,
               multivariate=s.multivariate, group=s.group and s.multivariate, constant_liar=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.history:  # a bounded history (sampler.history): a suggest's cost does not grow with the trials
            from ..bounded_tpe import BoundedTPESampler
            return BoundedTPESampler(best=s.history_best, recent=s.history, **tpe)
        return optuna.samplers.TPESampler(**tpe)


register_sampler(SamplerPart("random", "random draws", random_sampler))
register_sampler(SamplerPart("tpe", "Optuna's TPE", tpe_sampler))
