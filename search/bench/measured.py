"""The README's table of what was measured, generated from the committed JSON (doc_tables.py, kind
`measured`): each row reads its figure from one file that records the date, the commit, the machine
and the command that made it, so a figure has one owner and the table cannot drift from it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..cli import clock


def _when(d: dict[str, Any]) -> str:
    commit = str(d.get("commit") or "commit not recorded")
    return f"{d.get('date', 'date not recorded')}, {commit[:7] if ' ' not in commit else commit}; {d.get('machine')}"


def quickstart(d: dict[str, Any]) -> tuple[str, str]:
    runs = d["runs"]
    walls = sorted(r["wall_s"] for r in runs)
    same = len({(r["best_val_elbo_nats"], r["test_iwae_nats"]) for r in runs}) == 1
    figure = (f"{clock(walls[0])} to {clock(walls[-1])} over {len(runs)} runs; best val -ELBO "
              f"{runs[0]['best_val_elbo_nats']:.2f} nats, test IWAE {runs[0]['test_iwae_nats']:.2f} nats"
              + (", the same in every run" if same else ""))
    return figure, _when(d)


def model_speed(d: dict[str, Any]) -> tuple[str, str]:
    loop, iwae = d["loop"], d["iwae"]
    figure = (f"{loop['images_per_s']:.1f} images/s through the training loop at batch {loop['batch_size']}; "
              f"IWAE k={iwae['iwae_k']}: {iwae['samples_per_s']:.0f} samples/s")
    return figure, _when(d)


def overhead(d: dict[str, Any]) -> tuple[str, str]:
    figure = (f"{100 * d['training_fraction']:.1f} % of trial-slot time in training (goal 95 %), "
              f"{d['overhead_s_per_trial']:.1f} s of overhead per trial ({d['trials']} trials on {d['slots']} slots)")
    return figure, _when(d)


def overhead_table(d: dict[str, Any]) -> str:
    """docs/benchmarks.md's split of the trial slots' time (search.bench's JSON)."""
    labels = {"updates": "updates (matnet's training steps)",
              "evaluations, checkpoints": "evaluations, checkpoints (the rest of `matnet.train`'s call)",
              "reporting to Tune": "reporting to Tune (results and checkpoints handed over)",
              "trial start": "trial start (config, restore)", "Ray, idle": "Ray and idle"}
    lines = [f"| where the trial slots' {d['slot_s']:.1f} s went | seconds | share |", "| --- | --- | --- |"]
    lines += [f"| {labels.get(k, k)} | {v:.1f} | {100 * v / d['slot_s']:.1f} % |"
              for k, v in d["seconds"].items()]
    lines.append(f"\n{d['trials']} trials on {d['slots']} slots, {d['steps_per_trial']} steps each: "
                 f"{100 * d['training_fraction']:.1f} % of the slots' time in training, "
                 f"{d['overhead_s_per_trial']:.1f} s "
                 f"of overhead per trial; Ray's start {d['ray_start_s']:.1f} s. {_when(d)}; `{d['command']}`.")
    return "\n".join(lines) + "\n"


def optuna_table(d: dict[str, Any]) -> str:
    """docs/strategies.md's cost of one suggest, whole history and bounded (search.bench optuna's JSON)."""
    lines = ["| finished trials | TPE, whole history | TPE, bounded history |", "| --- | --- | --- |"]
    lines += [f"| {r['finished']:,} | {r['full_ms']:.1f} ms | {r['bounded_ms']:.1f} ms |" for r in d["rows"]]
    lines.append(f"\n{_when(d)}; `{d['command']}`.")
    return "\n".join(lines) + "\n"


def scale_table(rows: list[dict[str, Any]]) -> str:
    """README's driver-at-scale rows (search.bench scale's JSON): the rows that record their machine."""
    lines = ["| trials | setup | wall s (x ideal) | driver CPU ms/trial | suggest/tell s | signing s | tracking writer "
             "CPU s | peak driver MB | checkpoints | when, commit; machine |", "| --- " * 10 + "|"]
    measured = [r for r in rows if r.get("machine") and "wall_s" in r]
    for r in sorted(measured, key=lambda r: (r["trials"], r["setup"])):
        seconds = r.get("driver_seconds", {})

        def cell(key: str) -> str:
            return f"{seconds[key]:.0f}" if key in seconds else "-"
        made = "every" if r.get("checkpoint_cadence") == "every" else "the last"
        kept = f"{r['keep_checkpoints']} kept, made at {made} report" if r.get("checkpoint_cadence") else "none"
        lines.append(f"| {r['trials']:,} | {r['setup']} | {r['wall_s']:.0f} ({r['wall_over_ideal']:.1f}x) | "
                     f"{r['driver_cpu_ms_per_trial']:.0f} | {cell('suggest/tell')} | {cell('signing')} | "
                     f"{cell('mlflow writer (own process)')} | {r['peak_driver_mb']:.0f} | {kept} | {_when(r)} |")
    return "\n".join(lines) + "\n"


def ar_impute(d: dict[str, Any]) -> tuple[str, str]:
    head, plain = d["models"]["head"], d["models"]["plain"]
    figure = (f"MSE {head['mse']:.3f} against {plain['mse']:.3f} for the same model without the head; "
              f"{head['impute_seconds']} s for {d['images']} images")
    return figure, _when(d)


def simulated(d: dict[str, Any]) -> tuple[str, str]:
    runs = d["strategies"] if isinstance(d["strategies"], list) else list(d["strategies"])
    figure = (f"{len(runs)} strategies x {len(d['budgets'])} budgets x {len(d['seeds'])} seeds in "
              f"{d['simulation_seconds']:.0f} s on {d['jobs']} processes (goal 10 min)")
    return figure, _when(d)


def curves(d: dict[str, Any]) -> tuple[str, str]:
    cost = d["cost"]
    recorded = cost.get("recorded", {})
    figure = f"{cost['runs']} runs in {cost['seconds'] / 3600:.1f} h of {cost['threads']} CPU thread"
    machine = d.get("machine", {})
    when = (f"{' and '.join(recorded.get('dates', []))}, {' and '.join(recorded.get('commits', []))}; "
            f"{machine.get('processor')}, {machine.get('cpu_count')} CPUs")
    return figure, when


# what, its JSON, how its figure reads
ROWS: list[tuple[str, str, Callable[[dict[str, Any]], tuple[str, str]]]] = [
    ("the quickstart search, whole command", "docs/quickstart-runs.json", quickstart),
    ("training `mnist-conv` (11 latent layers) on the CPU", "docs/model-speed.json", model_speed),
    ("real quickstart trials, `python -m search.bench`", "docs/overhead.json", overhead),
    ("imputing with the autoregressive head (CIFAR-format photographs, centre hidden)", "docs/ar-impute-cifar.json",
     ar_impute),
    ("strategies simulated, table replay", "docs/simulate-table.json", simulated),
    ("recording the learning curves of `spaces/compare.yaml`", "docs/curves-compare.json", curves),
]


def table(root: Path) -> str:
    lines = ["| what | measured | when, commit; machine | from |", "| --- | --- | --- | --- |"]
    for what, source, row in ROWS:
        figure, when = row(json.loads((root / source).read_text()))
        lines.append(f"| {what} | {figure} | {when} | `{source}` |")
    return "\n".join(lines) + "\n"
