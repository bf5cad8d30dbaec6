"""Run a search: a YAML search space -> Optuna (TPE) + ASHA on Ray Tune -> MLflow -> the best checkpoint.

    python -m search.run spaces/quickstart.yaml
    python -m search.run SPACE.yaml --dry-run                # validate, print sampled configurations
    python -m search.run SPACE.yaml --resume                 # continue an interrupted search
    python -m search.run SPACE.yaml --address auto --storage s3://bucket/searches   # on a Ray cluster

Without --address (or RAY_ADDRESS) a private local Ray is started, sized to this machine. On a
cluster every node writes trial checkpoints to --storage, so it must be shared: a URI (s3://,
gs://, abfs://, ...), or an absolute path on a file system mounted at the same place on every node,
confirmed with --shared-storage. A relative path is refused there.

Results: STORAGE/NAME/ (search/folder.py) holds Ray Tune's experiment (trials, checkpoints),
space.yaml (the file as run), search.json, trials.json, best/ (the best checkpoint), figures/ and
summary.json. MLflow gets one parent run per search and one child run per trial (default store:
sqlite:///mlflow.db in this folder).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matnet.cli import ArgumentParser

from . import storage
from .cluster import DEFAULT_STORAGE, RunError, check_cluster_storage, cluster_address, init_ray, resolve_storage
from .dry_run import dry_run
from .folder import SearchFolder, SearchInfo
from .provenance import sign, verify
from .outcome import Outcome
from .results import ExportError
from . import study
from .space import Space, check_resume_compatible, load_space
from .study import StudyRef
from .tracking import runs as tracking
from .tracking.uri import checked_tracking_uri
from .tracking.context import dataset_input

# Ray is imported only once a search starts (search/cluster.py, after its loopback switch): a dry
# run or a mistake in the file answers without it.

__all__ = ["ERRORED_TRIALS_EXIT", "RunError", "SearchRun", "main", "run_search"]

# The exit status of a search that ran to its end but in which some trials errored (crashed beyond
# experiment.max_failures): the best of the others is exported all the same. 2 is a mistake in the
# input (one line), 130 an interruption (--resume continues it).
ERRORED_TRIALS_EXIT = 3


@dataclass
class SearchRun:
    """What a search run came to: the command's exit status and the seconds of its phases
    (ray_init, fit, export; search.bench reports them)."""

    code: int
    seconds: dict[str, float] = field(default_factory=dict)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m search.run", description=__doc__.split("\n\n")[0])
    p.add_argument("space", help="a search-space YAML file (e.g. spaces/quickstart.yaml)")
    p.add_argument("--address", help="an existing Ray cluster: auto, ray://HOST:10001 or HOST:6379 (default: "
                                     "RAY_ADDRESS, else a private local Ray)")
    p.add_argument("--num-samples", type=int, help="trials (default: experiment.num_samples)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: experiment.max_concurrent)")
    p.add_argument("--storage", help=f"where searches are kept (default: ./{DEFAULT_STORAGE}; a URI or a shared "
                                     f"absolute path on a cluster)")
    p.add_argument("--shared-storage", action="store_true",
                   help="confirm that the absolute --storage path is mounted at the same place on every node")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: mlflow.tracking_uri, MLFLOW_TRACKING_URI, "
                                          "or sqlite:///mlflow.db)")
    p.add_argument("--optuna-storage", help="where the Optuna study is kept: a database URL without a password "
                                            "(PGPASSWORD), or a journal file (default: sampler.storage, "
                                            "OPTUNA_STORAGE, or optuna.journal in the search's folder)")
    p.add_argument("--name", help="the search's name (default: experiment.name)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search STORAGE/NAME")
    p.add_argument("--dry-run", action="store_true", help="validate the file and print sampled configurations")
    p.add_argument("--no-export", action="store_true", help="skip the export of the best checkpoint at the end")
    p.add_argument("--trust-state", action="store_true",
                   help="resume even though Ray Tune's state files carry no signature of this machine's key "
                        "(they are unpickled: only for a folder you know is yours)")
    p.add_argument("--num-gpus", type=int, help="GPUs the private local Ray offers trials (default: the GPUs torch "
                                                "sees; not with --address: a cluster declares its own)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    space = load_space(args.space)
    for flag, value, least in (("--num-samples", args.num_samples, 1), ("--max-concurrent", args.max_concurrent, 0)):
        if value is not None and value < least:
            raise RunError(f"{flag} must be at least {least}, got {value}")
    if args.num_gpus is not None and (args.num_gpus < 0 or cluster_address(args)):
        raise RunError("--num-gpus must be >= 0, and only for the private local Ray (a cluster's nodes declare "
                       "their GPUs with ray start --num-gpus)")
    if args.name is not None and not args.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise RunError(f"--name {args.name!r}: use letters, digits, '_', '.', '-'")
    if args.dry_run:
        dry_run(space)
        return 0
    return run_search(args, space).code


def run_search(args: argparse.Namespace, space: Space, search_alg: Any = None, stop: Any = None) -> SearchRun:
    """Start the search the arguments describe, or resume it; fit, export, close its MLflow runs.
    `search_alg` and `stop` (a Tune stopper with `stop_all`: a budget that ends the search) go to a
    new search's Tuner (search.bench compare)."""
    experiment = space.settings.experiment
    name = args.name or experiment.name
    address = cluster_address(args)
    storage_path = resolve_storage(args.storage, address)
    folder = SearchFolder(storage.join(storage_path, name))
    if args.resume:
        if not folder.is_search():
            raise RunError(f"--resume: there is no search at {folder.path}; start it without --resume "
                           f"(or check --storage and --name)")
        info = folder.read_info()
        saved = folder.saved_space(info)
        check_resume_compatible(saved, space)
        if args.num_samples is not None and args.num_samples != info.num_samples:
            raise RunError(f"--num-samples {args.num_samples}: a resumed search keeps its {info.num_samples} "
                           f"trials; start a new search with --name to run more")
        if saved.settings.mlflow.enabled:
            # Checked (and, for a search started before URIs were stored absolute, made absolute from
            # the folder it was started in) before Ray starts.
            info.tracking_uri = checked_tracking_uri(info.tracking_uri, info.cwd)
            if args.tracking_uri and checked_tracking_uri(args.tracking_uri) != info.tracking_uri:
                raise RunError(f"this search logs to MLflow at {info.tracking_uri}; resume it without "
                               f"--tracking-uri or with that URI")
        if not args.trust_state:
            verify(folder)  # Tune's resume unpickles its state files: only ones this user's searches signed
        if not info.optuna_storage or not info.optuna_study:
            raise RunError(f"{folder.info_file} names no Optuna storage: the search was started by a version that "
                           f"kept its study inside Tune's state; finish it with that version, or start anew with "
                           f"--name")
        if args.optuna_storage and study.check_storage(args.optuna_storage, "--optuna-storage") != info.optuna_storage:
            raise RunError(f"this search keeps its Optuna study in {info.optuna_storage}; resume it without "
                           f"--optuna-storage or with that storage")
        StudyRef(info.optuna_storage, info.optuna_study).load()  # it is still there
        space = saved  # the search goes on exactly as it started
    else:
        if folder.is_used():
            raise RunError(f"a search named {name!r} already exists at {folder.path}; continue it with --resume, "
                           f"or start another with --name NEW_NAME")
        info = SearchInfo(
            name=name, space_file=space.path, cwd=os.getcwd(), storage=storage_path, experiment_dir=folder.path,
            tracking_uri=_tracking_uri(args, space),
            mlflow_experiment=space.settings.mlflow.experiment or experiment.name, parent_run_id=None,
            num_samples=args.num_samples or experiment.num_samples,
            max_concurrent=experiment.max_concurrent if args.max_concurrent is None else args.max_concurrent,
            optuna_storage=study.resolve_storage(args.optuna_storage, space.settings.sampler.storage, folder),
            optuna_study=name)
        StudyRef(info.optuna_storage, name).check_new()

    # Tune warns about frequent experiment snapshots, which keeping the best checkpoints forces.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # MLflow prints two links for every run it ends on a tracking server (one per trial), and its
    # experiment link opens the GenAI overview; the search prints the runs table's once, at its end.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # bars of kilobytes, in the search's log
    result = SearchRun(code=1)
    started = time.monotonic()
    init_ray(address, space, args.num_gpus)
    result.seconds["ray_init"] = time.monotonic() - started
    try:
        check_cluster_storage(storage_path, address, args.shared_storage)
        result.code = _fit(args, space, folder, info, result.seconds, search_alg, stop)
        return result
    finally:
        import ray
        ray.shutdown()


def _tracking_uri(args: argparse.Namespace, space: Space) -> str:
    """The new search's tracking URI, absolute and answering (when it logs to MLflow at all)."""
    uri = tracking.resolve_tracking_uri(args.tracking_uri, space.settings.mlflow.tracking_uri)
    return checked_tracking_uri(uri) if space.settings.mlflow.enabled else uri


def _start_tracking(space: Space, folder: SearchFolder, info: SearchInfo, resume: bool) -> str | None:
    """The search's parent MLflow run: reopened on resume, else created, with the Optuna study (and
    search.json written)."""
    mlflow_on = space.settings.mlflow.enabled
    if resume:
        if mlflow_on and info.parent_run_id:
            tracking.reopen_parent(info.tracking_uri, info.parent_run_id)
        return info.parent_run_id if mlflow_on else None
    StudyRef(info.optuna_storage, info.optuna_study).create(space.settings.experiment.mode, space.points())
    if mlflow_on:
        settings = space.settings
        info.parent_run_id = tracking.start_parent(
            info.tracking_uri, info.mlflow_experiment, info.name,
            params={"space_file": space.path, "base": settings.base, "num_samples": info.num_samples,
                    "metric": settings.experiment.metric, "mode": settings.experiment.mode,
                    "scheduler": settings.scheduler.type, "sampler": settings.sampler.type,
                    "sampler_seed": settings.sampler.seed, "max_concurrent": info.max_concurrent,
                    "reports_per_trial": space.reports_per_trial(), "storage": folder.path},
            tags={"mlflow.note.content": f"Search {info.name} of {space.path}; trials are the child runs."},
            artifacts=[space.path] if Path(space.path).is_file() else None,
            artifact_location=settings.mlflow.artifact_location,
            dataset=dataset_input(space.base_config().data))
    folder.write_info(info, space.raw_text)
    return info.parent_run_id


def _fit(args: argparse.Namespace, space: Space, folder: SearchFolder, info: SearchInfo,
         seconds: dict[str, float], search_alg: Any, stop: Any) -> int:
    from . import tuner
    from .export import export_search
    from .ledger import end_running, read_records

    parent = _start_tracking(space, folder, info, args.resume)
    # SIGTERM (a scheduler, `kill`) stops the search like Ctrl-C: Tune saves its state, so --resume works.
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(os.getpid(), signal.SIGINT))
    outcome = "KILLED"
    try:
        if args.resume:
            fitter = tuner.restored_tuner(folder, space)
        else:
            callback_list = tuner.callbacks(space, folder, info.name, info.tracking_uri, parent)
            fitter = tuner.new_tuner(space, info.storage, info.name, StudyRef(info.optuna_storage, info.optuna_study),
                                     callback_list, info.num_samples, info.max_concurrent, search_alg, stop)
        started = time.monotonic()
        grid = fitter.fit()
        elapsed = seconds["fit"] = time.monotonic() - started
        sign(folder)  # Tune has saved its state for the last time (also a search resumed with --trust-state)
        budget_s = space.settings.experiment.time_budget_s
        unfinished = sum(1 for r in read_records(folder).values() if not r.ended)
        budget_reached = ""
        if budget_s and elapsed >= budget_s - 1:
            budget_reached = f"time budget of {budget_s:g} s"
        elif stop is not None and stop.stop_all():
            budget_reached = "its budget"
        if budget_reached:
            end_running(folder)  # cut short by the search's budget: they ended, they were not interrupted
        interrupted = unfinished > 0 and not budget_reached
        print(f"search {info.name}: {len(grid)} trials in {elapsed:.0f} s"
              + (f" (interrupted; {unfinished} unfinished)" if interrupted else "")
              + (f" ({budget_reached} reached; {unfinished} cut short)" if budget_reached and unfinished else ""),
              flush=True)
        if interrupted:
            name = info.name
            print(f"interrupted: continue with  python -m search.run {space.path} --resume"
                  + (f" --name {name}" if name != space.settings.experiment.name else "")
                  + (f" --storage {info.storage}" if args.storage else ""), file=sys.stderr)
            return 130
        errored = [r for r in read_records(folder).values() if r.outcome == str(Outcome.ERROR)]
        if not args.no_export:
            started = time.monotonic()
            try:
                export_search(folder.path, tracking_uri=info.tracking_uri, log_mlflow=bool(parent), on_ray=True)
            except ExportError:
                if not errored:
                    raise
                print("export: nothing to export, every trial errored", file=sys.stderr)
            seconds["export"] = time.monotonic() - started
        outcome = "FINISHED"
        print(f"optuna study: {StudyRef(info.optuna_storage, info.optuna_study).how_to_load()}")
        if parent:
            print(f"mlflow: {tracking.runs_table_hint(info.tracking_uri, parent)}")
        if errored:
            print(f"search {info.name}: {len(errored)} of {info.num_samples} trials errored, e.g. "
                  f"{errored[0].trial_id}: {errored[0].error} (each trial's error.txt has the traceback); exit "
                  f"status {ERRORED_TRIALS_EXIT}", file=sys.stderr)
            return ERRORED_TRIALS_EXIT
        return 0
    except ExportError:
        outcome = "FAILED"
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if parent:
            try:
                tracking.close_search(info.tracking_uri, parent, outcome,
                                      note={"FINISHED": "finished", "KILLED": "interrupted"}.get(outcome, "failed"))
            except Exception as err:  # noqa: BLE001 - never hide the search's own outcome
                print(f"warning: MLflow runs not closed ({str(err).splitlines()[0]})", file=sys.stderr)


if __name__ == "__main__":
    from .cli import run_cli
    run_cli(main)
