"""How much of a trial slot goes into training: a search of short real trials on this machine.

    python -m search.bench [--trials 8] [--concurrent 2] [--steps 40] [--json bench.json]

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

import os
import statistics
import tempfile
import time
from pathlib import Path

from matnet.cli import ArgumentParser

from ..store.errors import RunError

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


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m search.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--concurrent", type=int, default=0, help="trial slots (default: the CPU count)")
    p.add_argument("--steps", type=int, default=40, help="training steps per trial (batch 50)")
    p.add_argument("--every", type=int, default=10, help="report (and checkpoint) every N steps")
    p.add_argument("--no-reuse", action="store_true", help="a new worker process per trial")
    p.add_argument("--json", help="also write the figures as JSON to this path")
    args = p.parse_args(argv)
    if args.trials < 1 or args.steps < 1 or args.every < 1:
        raise RunError("--trials, --steps and --every must be at least 1")
    slots = args.concurrent or (os.cpu_count() or 1)

    from ..run import SearchOptions, run_search
    from ..space import load_space
    from ..store.folder import SearchFolder
    from ..store.ledger import read_records

    with tempfile.TemporaryDirectory(prefix="matnet-bench-") as tmp:
        space_file = Path(tmp) / "bench.yaml"
        space_file.write_text(SPACE.format(trials=args.trials, concurrent=slots, steps=args.steps, every=args.every,
                                           reuse=str(not args.no_reuse).lower(), artifacts=Path(tmp) / "mlartifacts"))
        t0 = time.monotonic()
        outcome = run_search(load_space(space_file), SearchOptions(
            storage=str(Path(tmp) / "results"), export=False, tracking_uri=f"sqlite:///{tmp}/mlflow.db"))
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
        from matnet.outputs import write_json
        write_json(args.json, figures)
    return 0


