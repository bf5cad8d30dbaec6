"""The Ray Tune experiment of a search, as one Tuner: the trainable with its resources, the
strategy's search algorithm and scheduler, the search's callbacks, and Tune's checkpoint and failure
settings. A resumed search gets its Tuner back from Tune's own saved state instead."""
from __future__ import annotations

import os
from typing import Any

from ..space import Space
from ..store.folder import SearchFolder
from .harness import NONE, Harness


def trainable(space: Space):
    from ray import tune

    from .trainable import run_trial
    resources = space.settings.experiment.resources
    return tune.with_resources(tune.with_parameters(run_trial, space=space),
                               {"cpu": resources.cpu, "gpu": resources.gpu})


def quiet_tune_output() -> None:
    """Tune's output engine prints its configuration box, the results folder and a TensorBoard hint at
    every fit, whatever `verbose` says; its legacy engine (RAY_AIR_NEW_OUTPUT=0, a public switch) at
    verbose=0 prints nothing. The platform prints its own lines (progress.py)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def trial_loggers() -> list[Any]:
    """Tune's per-trial result.json and progress.csv, and not its TensorBoard event files: the
    trials' curves go to the tracking back-ends (search/tracking/, TensorBoard's own among them, written
    off Tune's loop), and flushing an event file at every result was 5 % of the driver's time at 64
    trials at once (search.bench scale's profile). TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=0 brings Tune's
    default loggers back. A resumed search's callbacks come from its saved state (Tune adds any
    default logger that state lacks)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    return [JsonLoggerCallback(), CSVLoggerCallback()]


def new_tuner(space: Space, strategy: Any, study: Any, storage: str, name: str, callbacks: list[Any],
              num_samples: int, max_concurrent: int, harness: Harness = NONE):
    """The search's Tuner: the strategy's searcher on the search's Optuna study and its scheduler, or
    what a benchmark's harness puts in their place (harness.py)."""
    from ray import tune
    from ray.tune.search import Searcher
    quiet_tune_output()
    experiment = space.settings.experiment
    search_alg = harness.search_alg or strategy.searcher(space, study)
    # Tune limits concurrency through a Searcher; a variant generator (PBT's) limits it itself.
    concurrent = (max_concurrent or None) if isinstance(search_alg, Searcher) else None
    tune_config = tune.TuneConfig(
        search_alg=search_alg, scheduler=strategy.scheduler(space), num_samples=num_samples,
        max_concurrent_trials=concurrent, time_budget_s=experiment.time_budget_s or None,
        reuse_actors=experiment.reuse_actors)
    run_config = tune.RunConfig(
        name=name, storage_path=storage, callbacks=[*callbacks, *trial_loggers()], stop=harness.stop,
        verbose=0,  # Tune's own tables and result boxes: the platform prints its own lines (progress.py)
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=strategy.checkpoints_to_keep(space),
            checkpoint_score_attribute=experiment.metric, checkpoint_score_order=experiment.mode),
        failure_config=tune.FailureConfig(max_failures=experiment.max_failures))
    return tune.Tuner(harness.trainable or trainable(space), param_space=strategy.param_space(space),
                      tune_config=tune_config, run_config=run_config)


def restored_tuner(folder: SearchFolder, space: Space, harness: Harness = NONE):
    """The interrupted search's Tuner, from Tune's own saved state (its searcher, scheduler and
    callbacks go on where they stopped): finished trials are not run again, unfinished ones continue
    from their last checkpoint. Tune unpickles that state: search.run checks its provenance first."""
    from ray import tune

    from ..store.errors import RunError
    quiet_tune_output()
    try:
        return tune.Tuner.restore(folder.path, harness.trainable or trainable(space), resume_unfinished=True,
                                  resume_errored=False)
    except (AttributeError, ImportError) as e:  # its pickles name code this version no longer has
        raise RunError(f"--resume: Tune's saved state of {folder.path} was written by another version of this "
                       f"project ({str(e).splitlines()[0]}); export what it has with python -m search.export "
                       f"{folder.path}, or start the search again with --name NEW_NAME") from None
