"""The Ray Tune experiment of a search: the trainable with its resources, the Optuna searcher (on
the search's persistent study), the scheduler, and the callbacks (the trial ledger first, then MLflow), as one Tuner."""
from __future__ import annotations

from typing import Any

from .folder import SearchFolder
from .ledger import TrialLedger
from .space import Space
from .study import StudyRef


def trainable(space: Space):
    from ray import tune

    from .trainable import run_trial
    resources = space.settings.experiment.resources
    return tune.with_resources(tune.with_parameters(run_trial, space=space),
                               {"cpu": resources.cpu, "gpu": resources.gpu})


def searcher(space: Space, study: StudyRef):
    import optuna

    from .searcher import OptunaSearcher
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    experiment = space.settings.experiment
    return OptunaSearcher(space=space.suggest, metric=experiment.metric, mode=experiment.mode, study=study,
                          sampler=space.make_sampler(), check=space.valid_trial_config)


def scheduler(space: Space):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    settings, experiment = space.settings.scheduler, space.settings.experiment
    if settings.type == "none":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="training_iteration", metric=experiment.metric, mode=experiment.mode,
                         max_t=space.reports_per_trial(), grace_period=settings.grace_period,
                         reduction_factor=settings.reduction_factor, brackets=settings.brackets)


def callbacks(space: Space, folder: SearchFolder, name: str, tracking_uri: str | None,
              parent_run_id: str | None) -> list[Any]:
    """The trial ledger, the MLflow callback when the search logs to MLflow (it reads the trials'
    best values from the ledger, so the ledger comes first), and the signer of Tune's state."""
    from .signer import StateSigner

    experiment = space.settings.experiment
    ledger = TrialLedger(folder, experiment.metric, experiment.mode)
    if not (tracking_uri and parent_run_id):
        return [ledger, StateSigner(folder)]
    from .tracking.callback import MlflowCallback
    return [ledger, MlflowCallback(tracking_uri, parent_run_id, space, name, ledger), StateSigner(folder)]


def new_tuner(space: Space, storage: str, name: str, study: StudyRef, callback_list: list[Any], num_samples: int,
              max_concurrent: int, search_alg: Any = None, stop: Any = None):
    """The search's Tuner; `search_alg` replaces the platform's searcher (search.bench compare runs
    Ray's stock OptunaSearch through it) and `stop` is a Tune stopper for the whole search."""
    from ray import tune
    experiment = space.settings.experiment
    tune_config = tune.TuneConfig(
        search_alg=search_alg or searcher(space, study), scheduler=scheduler(space), num_samples=num_samples,
        max_concurrent_trials=max_concurrent or None, time_budget_s=experiment.time_budget_s or None,
        reuse_actors=experiment.reuse_actors)
    run_config = tune.RunConfig(
        name=name, storage_path=storage, callbacks=callback_list, stop=stop,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=experiment.keep_checkpoints,
                                                checkpoint_score_attribute=experiment.metric,
                                                checkpoint_score_order=experiment.mode),
        failure_config=tune.FailureConfig(max_failures=experiment.max_failures))
    return tune.Tuner(trainable(space), tune_config=tune_config, run_config=run_config)


def restored_tuner(folder: SearchFolder, space: Space):
    """The interrupted search's Tuner, from Tune's own saved state (its searcher, scheduler and
    callbacks go on where they stopped): finished trials are not run again, unfinished ones continue
    from their last checkpoint. Tune unpickles that state: search.run checks its provenance first."""
    from ray import tune
    return tune.Tuner.restore(folder.path, trainable(space), resume_unfinished=True, resume_errored=False)
