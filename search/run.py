"""Run a search: a YAML search space -> a search strategy (Optuna + a Ray Tune scheduler) on Ray Tune
-> tracking (MLflow, TensorBoard) -> the best checkpoint.

    python -m search.run spaces/quickstart.yaml
    python -m search.run SPACE.yaml --dry-run                # validate, print sampled configurations
    python -m search.run SPACE.yaml --resume                 # continue an interrupted search
    python -m search.run SPACE.yaml --address auto --storage s3://bucket/searches   # on a Ray cluster

Without --address (or RAY_ADDRESS) a private local Ray is started, sized to this machine. On a
cluster every node writes trial checkpoints to --storage, so it must be shared: a URI (s3://,
gs://, abfs://, ...), or an absolute path on a file system mounted at the same place on every node,
confirmed with --shared-storage. A relative path is refused there.

Results: STORAGE/NAME/ (search/store/folder.py) holds Ray Tune's experiment (trials, checkpoints),
space.yaml (the file as run), search.json, trials.json, best/ (the best checkpoint), figures/ and
summary.json. Each tracking back-end the space file enables (search/tracking/) logs every trial.

From Python (what search.bench and the tests call): `run_search(load_space(PATH), SearchOptions(...))`,
and a benchmark's Harness (search/tune/harness.py) as the third argument.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .options import SearchOptions, options_of, parser
from .space import Space, check_resume_compatible, load_space
from .space.dry_run import dry_run
from .store import storage
from .store.errors import ExportError, RunError, UntrustedStateError
from .store.folder import SearchFolder, SearchInfo
from .store.ledger import TrialRecord, end_running, read_records
from .store.outcome import Outcome
from .store.provenance import sign, verify
from .store.study import check_storage
from .store.places import search_storage, study_storage
from . import tracking
from .tune import strategies
from .tune.cluster import check_cluster_storage, cluster_address
from .tune.harness import NONE, Harness
from .tune.session import ray_session, sigterm_as_interrupt

# Ray is imported only once a search starts (search/tune/cluster.py, after its loopback switch): a
# dry run or a mistake in the file answers without it.

__all__ = ["ERRORED_TRIALS_EXIT", "INTERRUPTED_EXIT", "STOPPED_EXIT", "SearchOptions", "SearchRun", "main", "parser",
           "run_search"]

# The exit status of a search that ran to its end but in which some trials errored (crashed beyond
# experiment.max_failures): the best of the others is exported all the same. 2 is a mistake in the
# input (one line), 130 an interruption (--resume continues it), 75 a search stopped by a fault it
# cannot go on through, such as a full disk (sysexits' EX_TEMPFAIL: --resume once it is fixed).
ERRORED_TRIALS_EXIT = 3
STOPPED_EXIT = 75
INTERRUPTED_EXIT = 130


@dataclass
class SearchRun:
    """What a search run came to: the command's exit status and the seconds of its phases
    (ray_init, fit, export; search.bench reports them)."""

    code: int
    seconds: dict[str, float] = field(default_factory=dict)
    folder: str = ""


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    space = load_space(args.space)
    options = options_of(args)
    if args.dry_run:
        dry_run(space, strategies.for_space(space).describe(space))
        return 0
    return run_search(space, options).code


# ---- the story of a search -------------------------------------------------------------------------
def run_search(space: Space, options: SearchOptions | None = None, harness: Harness = NONE) -> SearchRun:
    """Start the search `space` describes (or resume it), fit it on Ray Tune, export its best, close
    its tracking. A benchmark's `harness` (search/tune/harness.py) goes to the Tuner unchanged."""
    options = options or SearchOptions()
    address = cluster_address(options.address)
    storage_path = search_storage(options.storage, address)
    storage.check_reachable(storage_path)
    folder = SearchFolder(storage.join(storage_path, options.name or space.settings.experiment.name))
    if options.resume:
        info, space = reopen(folder, space, options)
        strategy = strategies.for_space(space, info.strategy)
    else:
        strategy = strategies.for_space(space, options.strategy)  # one it cannot run: one line, before Ray
        info = describe_new(folder, space, options, storage_path, strategy.name)
    tracker = tracking.tracker_for(space.settings, info)
    result = SearchRun(code=1, folder=folder.path)
    with ray_session(address, space, options.num_gpus, result.seconds):
        check_cluster_storage(storage_path, address, options.shared_storage)
        if not options.resume:
            info.study.create(space.settings.experiment.mode, space.points(), space.settings.experiment.metric,
                              None if strategy.uses_study else f"{strategy.name}: {strategy.summary}")
        tracker.start(space, folder.path, options.resume)
        folder.write_info(info, space.raw_text)
        status = "KILLED"
        try:
            fitted = fit(space, strategy, folder, info, tracker, options.resume, harness)
            result.seconds["fit"] = fitted.seconds
            result.code = finish(space, strategy, folder, info, tracker, fitted, options, result.seconds)
            status = "FINISHED" if result.code not in (INTERRUPTED_EXIT, STOPPED_EXIT) else "KILLED"
            return result
        except ExportError:
            status = "FAILED"
            raise
        finally:
            try:
                tracker.close(status)
            except Exception as err:  # noqa: BLE001 - never hide the search's own outcome
                print(f"warning: tracking runs not closed ({str(err).splitlines()[0]})", file=sys.stderr)


def describe_new(folder: SearchFolder, space: Space, options: SearchOptions, storage_path: str,
                 strategy: str) -> SearchInfo:
    """search.json of a new search: where everything goes, each place checked before Ray starts."""
    experiment = space.settings.experiment
    if folder.is_used():
        raise RunError(f"a search named {folder.name!r} already exists at {folder.path}; continue it with --resume, "
                       f"or start another with --name NEW_NAME")
    info = SearchInfo(
        name=folder.name, space_file=space.path, cwd=os.getcwd(), storage=storage_path, experiment_dir=folder.path,
        tracking=tracking.describe(space.settings, options.tracking_uri, experiment.name, folder.path),
        num_samples=options.num_samples or experiment.num_samples,
        max_concurrent=experiment.max_concurrent if options.max_concurrent is None else options.max_concurrent,
        strategy=strategy,
        optuna_storage=study_storage(options.optuna_storage, space.settings.sampler.storage, folder.path),
        optuna_study=folder.name)
    info.study.check_new()
    return info


def reopen(folder: SearchFolder, space: Space, options: SearchOptions) -> tuple[SearchInfo, Space]:
    """search.json and the space of the interrupted search at `folder`, checked against the flags."""
    if not folder.is_search():
        raise RunError(f"--resume: there is no search at {folder.path}; start it without --resume "
                       f"(or check --storage and --name)")
    info = folder.read_info()
    saved = folder.saved_space(info)
    check_resume_compatible(saved, space)
    if options.num_samples is not None and options.num_samples != info.num_samples:
        raise RunError(f"--num-samples {options.num_samples}: a resumed search keeps its {info.num_samples} "
                       f"trials; start a new search with --name to run more")
    tracking.check_resume(info, options.tracking_uri)
    if not options.trust_state:
        verify(folder)  # Tune's resume unpickles its state files: only ones this user's searches signed
    if options.optuna_storage and check_storage(options.optuna_storage, "--optuna-storage") != info.optuna_storage:
        raise RunError(f"this search keeps its Optuna study in {info.optuna_storage}; resume it without "
                       f"--optuna-storage or with that storage")
    info.study.load()  # it is still there
    return info, saved  # the search goes on exactly as it started


@dataclass
class Fitted:
    trials: int                       # the trials Tune knows
    seconds: float                    # of fitting
    records: dict[str, TrialRecord]   # trials.json as the fit left it
    budget_reached: str               # "" or what ended the search early
    stopped: str = ""                 # "" or the fault that stopped it (search/tune/faults.py)


def fit(space: Space, strategy: Any, folder: SearchFolder, info: SearchInfo, tracker: Any, resume: bool,
        harness: Harness) -> Fitted:
    """Ray Tune runs the trials (a new Tuner, or the interrupted one restored from its state)."""
    from .tune import tuner
    from .tune.callbacks import StateSigner, TrialLedger
    from .tune.faults import RoomWatch, stopped_by
    from .tune.progress import Progress

    if resume:
        fitter = tuner.restored_tuner(folder, space, harness)
    else:
        experiment = space.settings.experiment
        ledger = TrialLedger(folder, experiment.metric, experiment.mode)
        progress = Progress(experiment.metric, experiment.mode, info.num_samples, max_failures=experiment.max_failures)
        # The room watch comes last: when it stops the search, the others have done their part of the step.
        callbacks = [c for c in (ledger, tracker.callback(space, ledger, info.name), StateSigner(folder), progress,
                                 RoomWatch(folder, info.max_concurrent)) if c is not None]
        fitter = tuner.new_tuner(space, strategy, info.study, info.storage, info.name, callbacks, info.num_samples,
                                 info.max_concurrent, harness)
    started = time.monotonic()
    with sigterm_as_interrupt():
        try:
            grid = fitter.fit()
        except Exception as error:  # noqa: BLE001 - only a fault the platform stopped the search for is handled
            stop_reason = stopped_by(error)
            if stop_reason is None:
                raise
            return stopped_fit(folder, time.monotonic() - started, stop_reason.reason)
    elapsed = time.monotonic() - started
    sign(folder)  # Tune has saved its state for the last time (also a search resumed with --trust-state)
    budget_s = space.settings.experiment.time_budget_s
    budget_reached = ""
    if budget_s and elapsed >= budget_s - 1:
        budget_reached = f"time budget of {budget_s:g} s"
    elif harness.stop is not None and harness.stop.stop_all():
        budget_reached = "its budget"
    return Fitted(len(grid), elapsed, read_records(folder), budget_reached)


def stopped_fit(folder: SearchFolder, seconds: float, reason: str) -> Fitted:
    """A fit a fault stopped: Tune ended its trials without saving again, so its last save (signed
    here, as the signer may not have seen it yet) is where --resume goes on; the ledger keeps the
    trials that did not end as running, as after an interruption."""
    try:
        verify(folder)
    except UntrustedStateError:
        try:
            sign(folder)
        except OSError as e:  # neither the folder's disk nor the key's took them (provenance.sign)
            reason += f" (Tune's last state not signed: {e.strerror or e}; resume with --trust-state)"
    return Fitted(0, seconds, read_records(folder), "", reason)


def finish(space: Space, strategy: Any, folder: SearchFolder, info: SearchInfo, tracker: Any, fitted: Fitted,
           options: SearchOptions, seconds: dict[str, float]) -> int:
    """After the fit: the interrupted search's hint, or the export and where to look; the exit status."""
    from .export import export_search

    if fitted.stopped:
        if sys.stdout.isatty():
            sys.stdout.write("\r\033[K")  # the status line (tune/progress.py) the fault left standing
        print(f"search {info.name} stopped after {fitted.seconds:.0f} s: {fitted.stopped} "
              f"({resume_command(space, info, options)})", file=sys.stderr, flush=True)
        return STOPPED_EXIT
    unfinished = sum(1 for r in fitted.records.values() if not r.ended)
    if fitted.budget_reached and unfinished:
        # Cut short by the budget: ended, not interrupted; the ledger rules how, and Optuna is told the same.
        end_running(folder, space.settings.experiment.metric)
        fitted.records = read_records(folder)
        if strategy.uses_study:
            from .tune.searcher import end_cut_short
            end_cut_short(info.study, fitted.records, space.settings.experiment.metric)
    interrupted = unfinished > 0 and not fitted.budget_reached
    print(f"search {info.name}: {fitted.trials} trials in {fitted.seconds:.0f} s"
          + (f" (interrupted; {unfinished} unfinished)" if interrupted else "")
          + (f" ({fitted.budget_reached} reached; {unfinished} cut short)" if fitted.budget_reached and unfinished
             else ""), flush=True)
    if interrupted:
        print(f"interrupted: continue with  {resume_command(space, info, options)}", file=sys.stderr)
        return INTERRUPTED_EXIT
    errored = [r for r in fitted.records.values() if r.outcome == str(Outcome.ERROR)]
    if options.export:
        started = time.monotonic()
        try:
            export_search(folder.path, records=fitted.records, tracker=tracker, on_ray=True)
        except ExportError:
            if not errored:
                raise
            print("export: nothing to export, every trial errored", file=sys.stderr)
        seconds["export"] = time.monotonic() - started
    print(f"optuna study: {info.study.how_to_load()}")
    for line in tracker.where():
        print(line)
    if errored:
        print(f"search {info.name}: {len(errored)} of {info.num_samples} trials errored, e.g. "
              f"{errored[0].trial_id}: {errored[0].error} (each trial's error.txt has the traceback); exit "
              f"status {ERRORED_TRIALS_EXIT}", file=sys.stderr)
        return ERRORED_TRIALS_EXIT
    return 0


def resume_command(space: Space, info: SearchInfo, options: SearchOptions) -> str:
    return (f"python -m search.run {space.path} --resume"
            + (f" --name {info.name}" if info.name != space.settings.experiment.name else "")
            + (f" --storage {info.storage}" if options.storage else ""))


if __name__ == "__main__":
    from .cli import run_cli
    run_cli(main)
