"""The search driver at cluster scale: what the platform adds to Ray Tune when a search has hundreds
or thousands of trials, dozens at once.

    python -m search.bench scale [--trials 10,100,1000] [--concurrent 16,64] [--keep-checkpoints K] [--json PATH]

Trials replay recorded learning curves (replay.py: the shipped curves of spaces/compare.yaml, each
report `--trial-seconds` / 8 apart, sleeping instead of training; no torch), so the driver is all
that is measured. For every N trials x C at once (each trial 1 / C of the machine's CPUs), side by
side, each in a process of its own:

- platform:     search.run's whole path: the space's strategy (tpe: the default's sampler, every trial
                to its end, so every setup runs the same work), the platform's Optuna searcher on its
                journal file, MLflow on sqlite (a parent and a child run per trial, metrics at every
                report, figures), trials.json, state signing, the export of the best at the end;
- platform-pg:  the same with MLflow on a real PostgreSQL server (on loopback);
- plain:        Ray Tune with the same trainable and random configurations: no searcher, no callbacks;
- plain-checkpoints: the same, each report carrying a checkpoint and Tune keeping K per trial, as the
                platform's search does: Tune's own cost of checkpoints at scale;
- stock:        what a user wires by hand: Ray's OptunaSearch (the same TPE) and MLflowLoggerCallback.

Reported: wall time against the ideal (N x trial length / C), the driver's CPU seconds per trial,
its peak memory, results per second, where the driver's time went (suggest/tell, MLflow, ledger,
signing, export; Tune's snapshots of its state, timed and counted; Tune is the rest), the CPU of the
tracking writer (the process that makes the MLflow requests: search/tracking/writer.py), and the
size of the search folder. Rows: scale_rows.py.

Replayed trials checkpoint as real ones do: a copy of a real matnet checkpoint at every report
(`--checkpoint-cadence every`, the default; `last`, the cadence of rows before 2026-12-08, only at the
last report). K (`--keep-checkpoints`: 1 as in the quickstart, 2 in the cluster spaces) matters at
scale: Tune forces a snapshot of all the trials whenever a trial has reported K checkpoints since the
last one (scale_timing.snapshots). Every row records its date, commit and machine.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .scale_timing import SNAPSHOTS, WRITER, Timer, instrument, snapshots

SETUPS = ("platform", "platform-pg", "plain", "stock", "plain-checkpoints")
CURVES = Path(__file__).resolve().parents[2] / "docs" / "curves-compare.json"


def _space(workdir: Path, n: int, c: int, strategy: str = "tpe", keep: int = 1) -> Any:
    """The recorded space (compare.yaml) as a search of n trials, c at once, each 1/c of the CPUs,
    keeping `keep` checkpoints per trial."""
    import yaml

    from ..space import load_space
    from .curves import load
    raw = yaml.safe_load(load(CURVES).space_text)
    raw["experiment"].update(name="scale", num_samples=n, max_concurrent=c, max_failures=0, keep_checkpoints=keep,
                             time_budget_s=0, resources={"cpu": round((os.cpu_count() or 1) / c, 4), "gpu": 0})
    raw["strategy"] = strategy
    raw["sampler"] = {k: v for k, v in raw["sampler"].items() if k != "type"}
    raw["scheduler"] = {k: v for k, v in raw["scheduler"].items() if k != "type"}
    raw["mlflow"] = {"experiment": "scale", "sample_images": 16, "registered_model": ""}
    raw["export"] = {"iwae_k": 4, "limit": 20, "split": "test"}
    path = workdir / "scale.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_space(path, cwd=str(Path(__file__).resolve().parents[2]))


def _template(space: Any, workdir: Path) -> str:
    """A real matnet checkpoint (one training step of a configuration of the space) for the export."""
    from matnet.train import train
    config = space.trial_config(space.valid_samples(1, 0)[0]).override("train.max_steps", 1)
    train(config.override("train.eval_every_steps", 1).override("data.eval_limit", 20), workdir / "template",
          progress=False)
    return str(workdir / "template" / "checkpoint")


def _plain_params(space: Any) -> dict[str, Any]:
    """The space's parameters as Tune domains (every one drawn, conditions ignored: the same kind of
    configurations, for a trainable that only looks them up)."""
    from ray import tune

    from ..space.nodes import encode
    out = {}
    for name, dist in space.distributions().items():
        if dist.type == "categorical":
            out[name] = tune.choice([encode(c) for c in dist.choices])
        elif dist.type == "float":
            out[name] = tune.loguniform(dist.low, dist.high) if dist.log else tune.uniform(dist.low, dist.high)
        else:
            out[name] = tune.qrandint(dist.low, dist.high, dist.step)
    return out


def run_one(setup: str, n: int, c: int, trial_seconds: float, workdir: Path, keep: int = 1,
            cadence: str = "every") -> dict[str, Any]:
    """One setup at n trials, c at once, keeping `keep` checkpoints per trial (made at every report, or
    at the last), in this process; its figures."""
    import contextlib

    from matnet.record import stamp

    from .curves import load
    from .replay import replay_trainable
    from .curves import curves_space
    from .surrogate import Surrogate

    curves = load(CURVES)
    space = _space(workdir, n, c, keep=keep)
    model = Surrogate(curves, curves_space(curves), trees=50)
    recorded = statistics.median(sum(r.seconds for r in cv.reports) for cv in curves.main() if cv.complete)
    time_scale = trial_seconds / recorded
    template = _template(space, workdir) if setup.startswith("platform") or setup == "plain-checkpoints" else None
    trainable = replay_trainable(space, model, 0, time_scale, template, every_report=cadence == "every")
    timer = snapshots(instrument() if setup.startswith("platform") else Timer())
    figures: dict[str, Any] = {"setup": setup, "trials": n, "concurrent": c, "trial_seconds": trial_seconds,
                               "reports_per_trial": len(curves.report_steps), "keep_checkpoints": keep,
                               "checkpoint_cadence": cadence if template else None, "cpus": os.cpu_count(),
                               **{k: v for k, v in stamp("").items() if k != "command"},
                               "ideal_s": round(n * trial_seconds / c, 2)}
    with contextlib.ExitStack() as stack:
        uri = f"sqlite:///{workdir}/mlflow.db"
        if setup == "platform-pg":
            from .postgres import postgres
            server = stack.enter_context(postgres(("mlflow",)))
            os.environ["PGPASSWORD"] = server.password
            uri = server.uri("mlflow", password=False, driver="postgresql+psycopg")
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        if setup.startswith("platform"):
            from ..run import SearchOptions, run_search
            from ..tune.harness import Harness
            outcome = run_search(space, SearchOptions(storage=str(workdir / "results"), tracking_uri=uri),
                                 Harness(trainable=trainable))
            figures["exit_status"] = outcome.code
            fit_s = outcome.seconds.get("fit", 0.0)
            timer.seconds["export"] = outcome.seconds.get("export", 0.0)
        else:
            fit_s = _run_ray_tune(setup, space, trainable, n, c, workdir, uri)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        figures["command_s"] = round(time.monotonic() - t0, 2)
    driver_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    parts = {k: round(v, 2) for k, v in timer.seconds.items()}
    parts["tune (rest of the driver's CPU)"] = round(max(0.0, driver_cpu - sum(v for k, v in timer.seconds.items()
                                                                             if k not in ("export", WRITER))), 2)
    figures["tune_snapshots"] = timer.calls.get(SNAPSHOTS, 0)
    figures.update(wall_s=round(fit_s, 2), wall_over_ideal=round(fit_s / figures["ideal_s"], 3),
                   driver_cpu_s=round(driver_cpu, 2), driver_cpu_ms_per_trial=round(1000 * driver_cpu / n, 1),
                   peak_driver_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                   results_per_s=round(n * len(curves.report_steps) / max(fit_s, 1e-9), 1),
                   driver_seconds=parts, folder_mb=round(_size(workdir / "results") / 2 ** 20, 1))
    return figures


def _run_ray_tune(setup: str, space: Any, trainable: Any, n: int, c: int, workdir: Path, uri: str) -> float:
    """Plain Ray Tune, or Ray's stock OptunaSearch + MLflowLoggerCallback, around the same trainable."""
    import ray
    from ray import tune

    from ..tune.cluster import init_ray
    experiment = space.settings.experiment
    init_ray(None, space)
    try:
        checkpoints = None
        if setup.startswith("plain"):
            tune_config = tune.TuneConfig(num_samples=n, max_concurrent_trials=c, reuse_actors=True)
            param_space, callbacks = _plain_params(space), []
            if setup == "plain-checkpoints":  # as the search keeps them (space.yaml's keep_checkpoints)
                checkpoints = tune.CheckpointConfig(num_to_keep=experiment.keep_checkpoints)
        else:
            from ray.air.integrations.mlflow import MLflowLoggerCallback
            from ray.tune.search.optuna import OptunaSearch

            from ..tune import strategies
            searcher = OptunaSearch(space=space.suggest, metric=experiment.metric, mode=experiment.mode,
                                    sampler=strategies.get("tpe").sampler(space))
            tune_config = tune.TuneConfig(search_alg=searcher, num_samples=n, max_concurrent_trials=c,
                                          reuse_actors=True)
            param_space, callbacks = None, [MLflowLoggerCallback(tracking_uri=uri, experiment_name="scale")]
        tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                           run_config=tune.RunConfig(name=setup, storage_path=str(workdir / "results"),
                                                     callbacks=callbacks, checkpoint_config=checkpoints))
        t0 = time.monotonic()
        tuner.fit()
        return time.monotonic() - t0
    finally:
        ray.shutdown()


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def main(argv: list[str]) -> int:
    import argparse

    from matnet.cli import ArgumentParser, at_least, positive_number

    from ..store.errors import RunError

    p = ArgumentParser(prog="python -m search.bench scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", default="10,100,1000", help="N, comma-separated (default 10,100,1000)")
    p.add_argument("--concurrent", default="16,64", help="C, comma-separated (default 16,64)")
    p.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {', '.join(SETUPS)}")
    p.add_argument("--trial-seconds", type=positive_number, default=1.5, help="a trial's length (default 1.5)")
    p.add_argument("--keep-checkpoints", type=at_least(1), default=1,
                   help="checkpoints Tune keeps per trial, as experiment.keep_checkpoints (default 1, the "
                        "quickstart's; the cluster spaces keep 2)")
    p.add_argument("--checkpoint-cadence", choices=("every", "last"), default="every",
                   help="replayed trials checkpoint at every report, as real ones do (default), or at the last")
    p.add_argument("--timeout", type=at_least(1), default=3600, help="seconds per setup (default 3600)")
    p.add_argument("--json", help="write every setup's figures as JSON")
    p.add_argument("--one", help=argparse.SUPPRESS, default=None)
    args = p.parse_args(argv)
    try:
        trials = [int(x) for x in args.trials.split(",")]
        concurrent = [int(x) for x in args.concurrent.split(",")]
    except ValueError:
        raise RunError("--trials and --concurrent take whole numbers, comma-separated (e.g. 10,100,1000)") from None
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if any(s not in SETUPS for s in setups) or min(trials + concurrent) < 1:
        raise RunError(f"--setups: use some of {', '.join(SETUPS)}; --trials and --concurrent at least 1")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise RunError(f"{args.json}: its folder does not exist; create it first")
    if args.one:  # one setup in this process (the parent runs each in a fresh one)
        with tempfile.TemporaryDirectory(prefix="matnet-scale-") as tmp:
            print("SCALE " + json.dumps(run_one(args.one, trials[0], concurrent[0], args.trial_seconds, Path(tmp),
                                                  args.keep_checkpoints, args.checkpoint_cadence)),
                  flush=True)
        return 0
    from .scale_rows import previous_rows, print_row, run_setup
    rows = previous_rows(args.json, trials, concurrent, setups, args.keep_checkpoints)
    for n in trials:
        for c in concurrent:
            for setup in setups:
                print(f"scale: {setup}, {n} trials, {c} at once ...", flush=True)
                stdout, stderr = run_setup([sys.executable, "-m", "search.bench", "scale", "--one", setup, "--trials",
                                             str(n), "--concurrent", str(c), "--trial-seconds",
                                             str(args.trial_seconds), "--keep-checkpoints", str(args.keep_checkpoints),
                                             "--checkpoint-cadence", args.checkpoint_cadence],
                                            args.timeout)
                if stdout is None:
                    # A setup that does not finish in time is a result too (Ray's stock searcher at
                    # scale): recorded as such, and the others still run.
                    rows.append({"setup": setup, "trials": n, "concurrent": c, "trial_seconds": args.trial_seconds,
                                 "keep_checkpoints": args.keep_checkpoints, "timed_out_after_s": args.timeout})
                    print(f"  {setup:<12} N={n:<5} C={c:<3} did not finish within {args.timeout} s", flush=True)
                    continue
                line = next((x for x in stdout.splitlines() if x.startswith("SCALE ")), None)
                if line is None:
                    raise RunError(f"scale: {setup} at {n} x {c} failed: {(stderr.strip().splitlines() or ['?'])[-1]}")
                rows.append(json.loads(line[6:]))
                print_row(rows[-1])
                if args.json:  # after every row: a long run stopped midway keeps what it measured
                    from matnet.outputs import write_text
                    write_text(args.json, json.dumps(rows, indent=1) + "\n")
    return 0
