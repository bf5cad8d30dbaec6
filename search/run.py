"""Run a search: a YAML search space -> Optuna (TPE) + ASHA on Ray Tune -> MLflow -> the best checkpoint.

    python -m search.run spaces/quickstart.yaml
    python -m search.run SPACE.yaml --dry-run                # validate, print sampled configurations
    python -m search.run SPACE.yaml --resume                 # continue an interrupted search
    python -m search.run SPACE.yaml --address auto --storage s3://bucket/searches   # on a Ray cluster

Without --address (or RAY_ADDRESS) a private local Ray is started, sized to this machine. On a
cluster every node writes trial checkpoints to --storage, so it must be shared: a URI (s3://,
gs://, abfs://, ...), or an absolute path on a file system mounted at the same place on every node,
confirmed with --shared-storage. A relative path is refused there.

Results: STORAGE/NAME/ holds Ray Tune's experiment (trials, checkpoints), space.yaml (the file as
run), search.json, best/ (the best checkpoint), figures/ and summary.json. MLflow gets one parent run
per search and one child run per trial (default store: sqlite:///mlflow.db in this directory).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import export as ex
from .spaces import Space, check_resume_compatible, load_space


class RunError(RuntimeError):
    """A search that cannot be started or resumed as asked; one line with the fix."""


DEFAULT_STORAGE = "ray_results"
# Seconds spent in the phases of the last search run in this process (read by search.bench).
TIMINGS: dict[str, float] = {}


# ---------------------------------------------------------------------------------------------
# Building the Tune experiment


def make_trainable(space: Space):
    from ray import tune

    from .trainable import run_trial
    r = space.spec.experiment.resources
    resources = {"cpu": r.cpu, "gpu": r.gpu}
    return tune.with_resources(tune.with_parameters(run_trial, space=space), resources)


def make_searcher(space: Space):
    import optuna

    from .searcher import PruningOptunaSearch
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    e = space.spec.experiment
    return PruningOptunaSearch(space=space.suggest, metric=e.metric, mode=e.mode,
                               points_to_evaluate=space.points() or None, sampler=space.make_sampler(),
                               max_t=space.reports_per_trial())


def make_scheduler(space: Space):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    s, e = space.spec.scheduler, space.spec.experiment
    if s.type == "none":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="training_iteration", metric=e.metric, mode=e.mode,
                         max_t=space.reports_per_trial(), grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor, brackets=s.brackets)


def make_tuner(space: Space, storage: str, name: str, callbacks: list, num_samples: int, max_concurrent: int):
    from ray import tune
    e = space.spec.experiment
    tune_config = tune.TuneConfig(
        search_alg=make_searcher(space), scheduler=make_scheduler(space), num_samples=num_samples,
        max_concurrent_trials=max_concurrent or None, time_budget_s=e.time_budget_s or None,
        reuse_actors=e.reuse_actors)
    run_config = tune.RunConfig(
        name=name, storage_path=storage, callbacks=callbacks,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=e.keep_checkpoints, checkpoint_score_attribute=e.metric,
                                                checkpoint_score_order=e.mode),
        failure_config=tune.FailureConfig(max_failures=e.max_failures))
    return tune.Tuner(make_trainable(space), tune_config=tune_config, run_config=run_config)


# ---------------------------------------------------------------------------------------------
# Where the search runs and writes


def cluster_address(args: argparse.Namespace) -> str | None:
    return args.address or os.environ.get("RAY_ADDRESS") or None


def resolve_storage(args: argparse.Namespace, address: str | None) -> str:
    """Local runs: a directory (default ./ray_results). Clusters: shared storage only."""
    given = args.storage
    if given and ex.is_uri(given):
        return given.rstrip("/")
    if address is None:
        return str(Path(given or DEFAULT_STORAGE).expanduser().resolve())
    if not given:
        raise RunError(f"on a Ray cluster (--address {address}) give --storage: trials on other nodes write their "
                       f"checkpoints there, so it must be shared (s3://bucket/path, gs://..., or an absolute path "
                       f"mounted on every node with --shared-storage)")
    path = Path(given).expanduser()
    if not path.is_absolute():
        raise RunError(f"--storage {given} is a relative path on this machine, which other nodes of the cluster "
                       f"cannot reach; use a URI such as s3://bucket/path, or an absolute path on a file system "
                       f"mounted on every node, with --shared-storage")
    return str(path)


def check_cluster_storage(storage: str, address: str | None, shared_confirmed: bool) -> None:
    """After connecting: a local (non-URI) path is fine on a cluster only if every node is this
    machine, or the user confirmed it is mounted on every node."""
    if address is None or ex.is_uri(storage) or shared_confirmed:
        return
    import ray
    me = ray.util.get_node_ip_address()
    others = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")} - {me})
    if others or address.startswith("ray://"):
        where = f"nodes {', '.join(others[:3])}" if others else "the Ray client's cluster"
        raise RunError(f"--storage {storage} is a path on this machine, but {where} cannot be assumed to see it; "
                       f"use shared storage (s3://..., gs://...), or pass --shared-storage if {storage} is mounted "
                       f"at the same path on every node")


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_only() -> None:
    """Safe by default: a private local Ray listens on 127.0.0.1 only. Left alone, Ray binds its GCS,
    raylet and workers on every interface and registers the node under the machine's network address,
    so anyone who can reach the machine could reach them. Ray's switch for that is the setting that
    keeps Windows and macOS single-node; set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 to opt out."""
    os.environ.setdefault(LOOPBACK_ENV, "0")
    if os.environ[LOOPBACK_ENV] == "0" and "ray" in sys.modules:
        # Ray was imported before (a test, a notebook): its constant was read at import; Ray reads
        # it back from the module at ray.init, so set it there too.
        from ray._private import ray_constants
        ray_constants.ENABLE_RAY_CLUSTER = False


def init_ray(address: str | None, space: Space) -> None:
    if address is None:
        loopback_only()
    import ray
    r = space.spec.experiment.resources
    if address is None:
        num_cpus = os.cpu_count() or 1
        num_gpus = _local_gpus()
        if r.cpu > num_cpus:
            raise RunError(f"{space.path}: experiment.resources.cpu is {r.cpu:g} but this machine has {num_cpus} CPUs; "
                           f"lower it")
        if r.gpu > num_gpus:
            raise RunError(f"{space.path}: experiment.resources.gpu is {r.gpu:g} but this machine has {num_gpus} "
                           f"GPUs; set resources.gpu: 0 (and train.device: cpu) or run on a GPU machine / cluster")
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 log_to_driver=True, configure_logging=True, logging_level="WARNING")
    else:
        try:
            ray.init(address=address, log_to_driver=True, logging_level="WARNING")
        except ConnectionError as e:
            raise RunError(f"cannot connect to the Ray cluster at {address} ({str(e).splitlines()[0]}); is it "
                           f"running? (ray status)") from None


def _local_gpus() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return 0


# ---------------------------------------------------------------------------------------------
# Dry run


def dry_run(space: Space, n: int = 3) -> None:
    from matnet.build import build_model
    from matnet.data import dataset_info
    e, s = space.spec.experiment, space.spec.scheduler
    print(f"{space.path}: valid.")
    print(f"  search {e.name}: {e.num_samples} trials, {e.max_concurrent or 'as many as fit'} at once, "
          f"{e.resources.cpu:g} CPU + {e.resources.gpu:g} GPU each; {e.metric} ({e.mode})")
    sched = "no early stopping" if s.type == "none" else (
        f"ASHA over {space.reports_per_trial()} reports per trial (grace {s.grace_period}, "
        f"reduction {s.reduction_factor:g})")
    print(f"  base preset {space.spec.base}; {sched}; sampler {space.spec.sampler.type} (seed {space.spec.sampler.seed})")
    print(f"  searched: {', '.join(space.param_names())}")
    shape = dataset_info(space.base_config().data.dataset)
    for i, params in enumerate(space.sample(n), 1):
        cfg = space.trial_config(params)
        model = build_model(cfg, shape)  # a one-line ConfigError for a layout or task that cannot be built
        n_params = sum(p.numel() for p in model.parameters())
        layout = " + ".join(f"{m.modules}x[{m.scale}x{m.scale} w{m.width} z{m.latent_channels}]"
                            for m in cfg.model.meta_modules)
        print(f"  sample {i}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()))
        print(f"            -> {model.num_layers} latent layers, {n_params / 1e6:.2f}M parameters: top z{cfg.model.top_latents} + {layout}")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------
# The command


def _unfinished_trials(exp_dir: str) -> int:
    """Trials that the saved experiment state holds as not finished. Tune writes that state before
    it stops the trials still running (and marks them TERMINATED in memory), so this is the way to
    tell an interrupted search from a finished one."""
    from ray.tune import ExperimentAnalysis
    trials = ExperimentAnalysis(exp_dir).trials or []
    return sum(1 for t in trials if t.status not in ("TERMINATED", "ERROR"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m search.run", description=__doc__.split("\n\n")[0])
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
    p.add_argument("--name", help="the search's name (default: experiment.name)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search STORAGE/NAME")
    p.add_argument("--dry-run", action="store_true", help="validate the file and print sampled configurations")
    p.add_argument("--no-export", action="store_true", help="skip the export of the best checkpoint at the end")
    args = p.parse_args(argv)

    space = load_space(args.space)
    e = space.spec.experiment
    for flag, v in (("--num-samples", args.num_samples), ("--max-concurrent", args.max_concurrent)):
        if v is not None and v < (1 if flag == "--num-samples" else 0):
            raise RunError(f"{flag} must be at least {1 if flag == '--num-samples' else 0}, got {v}")
    if args.name is not None and not args.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise RunError(f"--name {args.name!r}: use letters, digits, '_', '.', '-'")
    if args.dry_run:
        dry_run(space)
        return 0

    from . import tracking

    name = args.name or e.name
    address = cluster_address(args)
    storage = resolve_storage(args, address)
    exp_dir = ex.join(storage, name)
    num_samples = args.num_samples or e.num_samples
    max_concurrent = e.max_concurrent if args.max_concurrent is None else args.max_concurrent
    started = ex.exists(ex.join(exp_dir, ex.SEARCH_JSON))

    if args.resume:
        if not started:
            raise RunError(f"--resume: there is no search at {exp_dir}; start it without --resume "
                           f"(or check --storage and --name)")
        info = ex.read_search_info(exp_dir)
        saved = ex.load_saved_space(exp_dir, info)
        check_resume_compatible(saved, space)
        if args.num_samples is not None and args.num_samples != info.get("num_samples"):
            raise RunError(f"--num-samples {args.num_samples}: a resumed search keeps its {info.get('num_samples')} "
                           f"trials; start a new search with --name to run more")
        uri = info["tracking_uri"]
        if args.tracking_uri and args.tracking_uri != uri:
            raise RunError(f"this search logs to MLflow at {uri}; resume it without --tracking-uri or with that URI")
        space = saved  # the search goes on exactly as it started
    else:
        if started or ex.exists(ex.join(exp_dir, "tuner.pkl")):
            raise RunError(f"a search named {name!r} already exists at {exp_dir}; continue it with --resume, or "
                           f"start another with --name NEW_NAME")
        uri = tracking.resolve_tracking_uri(args.tracking_uri, space.spec.mlflow.tracking_uri)

    # Tune warns about frequent experiment snapshots, which keeping the best checkpoints forces.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    t_init = time.monotonic()
    init_ray(address, space)
    TIMINGS["ray_init_s"] = time.monotonic() - t_init
    try:
        check_cluster_storage(storage, address, args.shared_storage)
        return _run(args, space, name, storage, exp_dir, uri, num_samples, max_concurrent)
    finally:
        import ray
        ray.shutdown()


def _run(args: argparse.Namespace, space: Space, name: str, storage: str, exp_dir: str, uri: str,
         num_samples: int, max_concurrent: int) -> int:
    from ray import tune

    from . import tracking

    e = space.spec.experiment
    mlflow_on = space.spec.mlflow.enabled
    mlflow_exp = space.spec.mlflow.experiment or e.name
    if args.resume:
        info = ex.read_search_info(exp_dir)
        parent = info.get("parent_run_id")
        if mlflow_on and parent:
            tracking.reopen_parent(uri, parent)
    else:
        parent = None
        if mlflow_on:
            parent = tracking.start_parent(
                uri, mlflow_exp, name,
                params={"space_file": space.path, "base": space.spec.base, "num_samples": num_samples,
                        "metric": e.metric, "mode": e.mode, "scheduler": space.spec.scheduler.type,
                        "sampler": space.spec.sampler.type, "sampler_seed": space.spec.sampler.seed,
                        "max_concurrent": max_concurrent, "reports_per_trial": space.reports_per_trial(),
                        "storage": exp_dir},
                tags={"mlflow.note.content": f"Search {name} of {space.path}; trials are the child runs."},
                artifacts=[space.path] if Path(space.path).is_file() else None)
        info = {"name": name, "space_file": space.path, "cwd": os.getcwd(), "storage": storage,
                "experiment_dir": exp_dir, "tracking_uri": uri, "mlflow_experiment": mlflow_exp,
                "parent_run_id": parent, "num_samples": num_samples, "max_concurrent": max_concurrent,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        ex.write_text(ex.join(exp_dir, ex.SPACE_COPY), space.raw_text)
        ex.write_text(ex.join(exp_dir, ex.SEARCH_JSON), json.dumps(info, indent=2) + "\n")

    callbacks = []
    if mlflow_on and parent:
        callbacks.append(tracking.MlflowCallback(uri, parent, space, space.reports_per_trial(), name))

    # SIGTERM (a scheduler, `kill`) stops the search like Ctrl-C: Tune saves its state, so --resume works.
    def on_term(signum, frame):
        os.kill(os.getpid(), signal.SIGINT)
    previous_term = signal.signal(signal.SIGTERM, on_term)

    outcome = "KILLED"
    try:
        if args.resume:
            tuner = tune.Tuner.restore(exp_dir, make_trainable(space), resume_unfinished=True, resume_errored=False)
        else:
            tuner = make_tuner(space, storage, name, callbacks, num_samples, max_concurrent)
        t0 = time.monotonic()
        grid = tuner.fit()
        elapsed = time.monotonic() - t0
        TIMINGS["fit_s"] = elapsed
        unfinished = _unfinished_trials(exp_dir)
        out_of_time = bool(e.time_budget_s) and elapsed >= e.time_budget_s - 1
        interrupted = unfinished > 0 and not out_of_time
        print(f"search {name}: {len(grid)} trials in {elapsed:.0f} s"
              + (f" (interrupted; {unfinished} unfinished)" if interrupted else "")
              + (f" (time budget of {e.time_budget_s:g} s reached; {unfinished} cut short)" if out_of_time and unfinished else ""),
              flush=True)
        if interrupted:
            print(f"interrupted: continue with  python -m search.run {space.path} --resume"
                  + (f" --name {name}" if name != e.name else "")
                  + (f" --storage {storage}" if args.storage else ""), file=sys.stderr)
            return 130
        if not args.no_export:
            t_export = time.monotonic()
            ex.export_search(exp_dir, tracking_uri=uri, log_mlflow=mlflow_on and bool(parent))
            TIMINGS["export_s"] = time.monotonic() - t_export
        outcome = "FINISHED"
        return 0
    except ex.ExportError:
        outcome = "FAILED"
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if mlflow_on and parent:
            try:
                tracking.close_search(uri, parent, outcome,
                                      note={"FINISHED": "finished", "KILLED": "interrupted"}.get(outcome, "failed"))
            except Exception as err:  # noqa: BLE001 - never hide the search's own outcome
                print(f"warning: MLflow runs not closed ({str(err).splitlines()[0]})", file=sys.stderr)


if __name__ == "__main__":
    ex.run_cli(main, extra=(RunError,))
