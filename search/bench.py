"""How much of a trial slot goes into training: a search of short real trials on this machine.

    python -m search.bench [--trials 8] [--concurrent 2] [--steps 40] [--json bench.json]
    python -m search.bench compare SPACE.yaml --seeds N --budget STEPS [--json PATH] [--plot PNG]

(`compare`: search strategies side by side on the same compute, search/compare.py.)

Runs a real search (local Ray, Optuna, MLflow logging and checkpoints, no early stopping) of a tiny
MatNet on a slice of MNIST, then reports

- training fraction: the time trials spent inside `matnet.train.train` (less the time handing
  results and checkpoints to Tune), summed over trials, divided by (wall time of the search x
  concurrent trial slots). The rest is Ray's scheduling, worker start-up, data loading, result
  and checkpoint handling and the driver's MLflow logging, plus idle slots at the end.
- per-trial overhead: (wall time x slots - training time) / trials, in seconds.

Ray's start (and stop) is reported apart: it is paid once per search, not per trial.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from matnet.cli import ArgumentParser

SPACE = """\
experiment:
  name: bench
  num_samples: {trials}
  max_concurrent: {concurrent}
  resources: {{cpu: 1, gpu: 0}}
  max_failures: 0
  keep_checkpoints: 1
  reuse_actors: {reuse}
base: tiny
data: {{dataset: mnist, train_limit: 1000, eval_limit: 200}}
fixed:
  train: {{max_steps: {steps}, eval_every_steps: {every}, batch_size: 50, device: cpu}}
search:
  train.lr: {{type: float, low: 5.0e-4, high: 5.0e-3, log: true}}
  model.top_latents: {{type: categorical, choices: [8, 16]}}
scheduler: {{type: none}}
sampler: {{type: tpe, seed: 0}}
mlflow: {{sample_images: 16, artifact_location: {artifacts}}}
"""


def compare_main(argv: list[str]) -> int:
    from .cluster import RunError
    from .compare import STRATEGIES, compare, plot, print_report, to_json

    p = ArgumentParser(prog="python -m search.bench compare",
                                description="search strategies side by side on the same compute")
    p.add_argument("space", help="a search-space YAML whose trials take seconds (e.g. spaces/compare.yaml)")
    p.add_argument("--seeds", type=int, default=3, help="runs per strategy (seeds 0..N-1)")
    p.add_argument("--budget", type=int, required=True, help="training steps per run, all trials together")
    p.add_argument("--strategies", default=",".join(STRATEGIES),
                   help=f"comma-separated, from {', '.join(STRATEGIES)} (default: all)")
    p.add_argument("--json", help="write the report and every run's curve as JSON")
    p.add_argument("--plot", help="write the best value against the steps spent as PNG")
    p.add_argument("--keep", help="keep the runs' search folders under this folder (default: a temporary one)")
    args = p.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise RunError(f"--strategies {args.strategies!r}: use some of {', '.join(STRATEGIES)}")
    if args.seeds < 1 or args.budget < 1:
        raise RunError("--seeds and --budget must be at least 1")
    for out in (args.json, args.plot):
        if out and not Path(out).resolve().parent.is_dir():
            raise RunError(f"{out}: its folder does not exist; create it first")
    keep = Path(args.keep).resolve() if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    report, results = compare(Path(args.space), args.seeds, args.budget, strategies, keep)
    from .space import load_space
    metric = load_space(args.space).settings.experiment.metric
    print_report(report, metric)
    if args.json:
        Path(args.json).write_text(to_json(report, results))
    if args.plot:
        plot(report, metric, Path(args.plot))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "compare":
        return compare_main(argv[1:])
    p = ArgumentParser(prog="python -m search.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--concurrent", type=int, default=0, help="trial slots (default: the CPU count)")
    p.add_argument("--steps", type=int, default=40, help="training steps per trial (batch 50)")
    p.add_argument("--every", type=int, default=10, help="report (and checkpoint) every N steps")
    p.add_argument("--no-reuse", action="store_true", help="a new worker process per trial")
    p.add_argument("--json", help="also write the figures as JSON to this path")
    args = p.parse_args(argv)
    if args.trials < 1 or args.steps < 1 or args.every < 1:
        from .cluster import RunError
        raise RunError("--trials, --steps and --every must be at least 1")
    slots = args.concurrent or (os.cpu_count() or 1)

    from . import run
    from .ledger import read_records
    from .folder import SearchFolder
    from .space import load_space

    with tempfile.TemporaryDirectory(prefix="matnet-bench-") as tmp:
        space_file = Path(tmp) / "bench.yaml"
        space_file.write_text(SPACE.format(trials=args.trials, concurrent=slots, steps=args.steps, every=args.every,
                                           reuse=str(not args.no_reuse).lower(), artifacts=Path(tmp) / "mlartifacts"))
        t0 = time.monotonic()
        outcome = run.run_search(run.parser().parse_args([
            str(space_file), "--storage", str(Path(tmp) / "results"), "--no-export",
            "--tracking-uri", f"sqlite:///{tmp}/mlflow.db"]), load_space(space_file))
        total = time.monotonic() - t0
        if outcome.code != 0:
            return outcome.code
        records = read_records(SearchFolder(str(Path(tmp) / "results" / "bench")))
        train_s = [float(r.last.get("train_call_s", 0.0)) for r in records.values()]
    wall = outcome.seconds["fit"]
    busy = sum(train_s)
    fraction = busy / (wall * slots)
    overhead = (wall * slots - busy) / len(train_s)
    figures = {
        "trials": len(train_s), "slots": slots, "steps_per_trial": args.steps, "report_every_steps": args.every,
        "reuse_actors": not args.no_reuse,
        "search_wall_s": round(wall, 2), "ray_start_s": round(outcome.seconds["ray_init"], 2),
        "command_wall_s": round(total, 2),
        "train_s_total": round(busy, 2), "train_s_per_trial_median": round(statistics.median(train_s), 2),
        "training_fraction": round(fraction, 4), "overhead_s_per_trial": round(overhead, 2),
        "cpu_count": os.cpu_count(),
    }
    print()
    print(f"{'trials x slots':>26}  {figures['trials']} trials, {slots} slots, {args.steps} steps each "
          f"(report + checkpoint every {args.every})")
    print(f"{'search wall time':>26}  {wall:.1f} s   (Ray start {figures['ray_start_s']:.1f} s, whole command {total:.1f} s)")
    print(f"{'time inside train()':>26}  {busy:.1f} s   (median {figures['train_s_per_trial_median']:.1f} s per trial)")
    print(f"{'training fraction':>26}  {fraction:.1%} of trial-slot time")
    print(f"{'overhead per trial':>26}  {overhead:.1f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from .cli import run_cli
    run_cli(main)
