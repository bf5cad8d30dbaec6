"""How much of a trial slot goes into training: a search of real trials on this machine, and where
the rest of the time went.

    python -m search.bench [--space spaces/quickstart.yaml] [--trials 8] [--concurrent 2]
                           [--steps N] [--every N] [--no-reuse] [--json bench.json]

Runs the space's search as search.run does (local Ray, Optuna, MLflow with its figures, checkpoints
at every report, the ledger, state signing), with every trial trained to its end (no early
stopping, so every run does the same work) and no export. By default the quickstart's own trials:
the `tiny` MatNet on 3,000 MNIST images, 120 steps of batch 100, an evaluation and a checkpoint
every 20. Then it splits the trial slots' time (wall time of the search x slots):

- updates:                 matnet's training steps (`train_seconds`);
- evaluations, checkpoints: the rest of matnet.train's call: its start (data, model), the
                           validation ELBO and the checkpoint written at every report;
- reporting to Tune:       handing each result and checkpoint to Ray Tune (a copy into the storage);
- trial start:             the trial's call before matnet.train (its config, a restored checkpoint);
- Ray, idle:               the rest: scheduling, worker processes, the driver's work between trials,
                           and slots left idle at the end while the last trials finish.

The training fraction is the share of matnet.train's call less reporting (updates, evaluations,
checkpoints: what a trial does for its user), as measured since the first version of this benchmark;
the updates' share is printed beside it. Ray's start is paid once per search and reported apart.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from matnet.cli import ArgumentParser, at_least

from ..store.errors import RunError

QUICKSTART = Path(__file__).resolve().parents[2] / "spaces" / "quickstart.yaml"


def bench_space(source: Path, workdir: Path, trials: int, slots: int, steps: int | None, every: int | None,
                reuse: bool) -> Path:
    """The space file as a benchmark: n trials, all to their end, no export, MLflow in `workdir`."""
    try:
        raw = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise RunError(f"{source}: cannot read it as a space file ({type(e).__name__}); give a space YAML") from None
    raw["experiment"].update(name="bench", num_samples=trials, max_concurrent=slots, time_budget_s=0,
                             max_failures=0, reuse_actors=reuse)
    raw.pop("strategy", None)
    raw["scheduler"] = {**(raw.get("scheduler") or {}), "type": "none"}
    raw["sampler"] = {**(raw.get("sampler") or {}), "type": "tpe"}
    raw["mlflow"] = {**(raw.get("mlflow") or {}), "experiment": "bench", "registered_model": "",
                     "artifact_location": str(workdir / "mlartifacts")}
    train = raw.setdefault("fixed", {}).setdefault("train", {})
    if steps is not None:
        train["max_steps"] = steps
    if every is not None:
        train["eval_every_steps"] = every
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m search.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default=str(QUICKSTART), help="the space whose trials are run (default: the quickstart's)")
    p.add_argument("--trials", type=at_least(1), default=8)
    p.add_argument("--concurrent", type=at_least(0, "0: the CPU count"), default=0,
                   help="trial slots (default: the CPU count)")
    p.add_argument("--steps", type=at_least(1), help="training steps per trial (default: the space's)")
    p.add_argument("--every", type=at_least(1), help="report (and checkpoint) every N steps (default: the space's)")
    p.add_argument("--no-reuse", action="store_true", help="a new worker process per trial")
    p.add_argument("--json", help="also write the figures as JSON to this path")
    args = p.parse_args(argv)
    slots = args.concurrent or (os.cpu_count() or 1)

    from ..run import SearchOptions, run_search
    from ..space import load_space
    from ..store.folder import SearchFolder
    from ..store.ledger import read_records

    with tempfile.TemporaryDirectory(prefix="matnet-bench-") as tmp:
        space_file = bench_space(Path(args.space), Path(tmp), args.trials, slots, args.steps, args.every,
                                 not args.no_reuse)
        space = load_space(space_file)  # relative paths in it from here, as search.run reads them
        t0 = time.monotonic()
        outcome = run_search(space, SearchOptions(storage=str(Path(tmp) / "results"), export=False,
                                                  tracking_uri=f"sqlite:///{tmp}/mlflow.db"))
        total = time.monotonic() - t0
        if outcome.code != 0:
            return outcome.code
        lasts = [r.last for r in read_records(SearchFolder(str(Path(tmp) / "results" / "bench"))).values()]
    figures = split_time(lasts, outcome.seconds["fit"], slots)
    figures.update(trials=len(lasts), slots=slots, reuse_actors=not args.no_reuse, space=args.space,
                   steps_per_trial=max(int(r.get("step") or 0) for r in lasts), ray_start_s=round(outcome.seconds["ray_init"], 2), command_wall_s=round(total, 2),
                   cpu_count=os.cpu_count())
    print_figures(figures, total)
    if args.json:
        from matnet.outputs import write_json
        from matnet.record import stamp
        write_json(args.json, {**stamp("python -m search.bench", argv), **figures})
    return 0


def split_time(lasts: list[dict], wall: float, slots: int) -> dict:
    """Where the trial slots' time went, from each trial's last result (cumulative timings)."""
    def total(key: str) -> float:
        return sum(float(r.get(key) or 0.0) for r in lasts)
    slot_s = wall * slots
    updates = total("train_seconds")
    in_train = total("train_call_s")           # matnet.train's call, less reporting
    reporting = total("report_s")
    start = total("trial_setup_s")
    parts = {"updates": updates, "evaluations, checkpoints": in_train - updates, "reporting to Tune": reporting,
             "trial start": start, "Ray, idle": slot_s - in_train - reporting - start}
    return {"search_wall_s": round(wall, 2), "slot_s": round(slot_s, 2),
            "seconds": {k: round(v, 2) for k, v in parts.items()},
            "training_fraction": round(in_train / slot_s, 4), "updates_fraction": round(updates / slot_s, 4),
            "overhead_s_per_trial": round((slot_s - in_train) / max(1, len(lasts)), 2),
            "train_s_per_trial_median": round(statistics.median(float(r.get("train_call_s") or 0) for r in lasts), 2)}


def print_figures(f: dict, total: float) -> None:
    print()
    print(f"{'trials x slots':>26}  {f['trials']} trials on {f['slots']} slots (reuse workers: {f['reuse_actors']})")
    print(f"{'search wall time':>26}  {f['search_wall_s']:.1f} s   (Ray start {f['ray_start_s']:.1f} s, whole command "
          f"{total:.1f} s)")
    print(f"{'training fraction':>26}  {f['training_fraction']:.1%} of trial-slot time in matnet.train "
          f"(updates alone {f['updates_fraction']:.1%})")
    print(f"{'overhead per trial':>26}  {f['overhead_s_per_trial']:.1f} s")
    print(f"{'where the slots went':>26}  " + ", ".join(f"{k} {v:.1f} s ({v / f['slot_s']:.1%})"
                                                    for k, v in f["seconds"].items()))
