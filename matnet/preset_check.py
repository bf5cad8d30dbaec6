"""Every preset trains under every budget form. A preset is a promise that it trains: a short run of
it, bounded by steps (train.max_steps), by epochs (train.epochs, over a training split cut to that
many batches) or by minutes (train.max_minutes), from each of a few seeds, must skip no update (a
non-finite loss or gradient, skipped on the device), not diverge, and end with a finite validation
bound. Short runs are where a preset is most fragile: their learning-rate warm-up is the shortest
(schedule.warmup_steps) and the full rate comes within a few dozen steps.

    python -m matnet.bench presets [--presets P,Q] [--seeds 0,1,2] [--steps 30] [--minutes 1] [--json PATH]

A preset whose data set is not on this machine is reported as such; `--data-dir` gives the folder of
CIFAR-10's batches and Burda's chardata.mat, `--images` the image folder (scripts/stand_in_data.py
writes stand-ins for all three from offline images).
"""
from __future__ import annotations

import math
import time
from typing import Any

from .record import git_revision
from .record import machine
from .config import Config
from .data import DatasetMissingError
from .nonfinite import NonFiniteLossError
from .presets import PRESETS, preset

FORMS = ("steps", "epochs", "minutes")
EVAL_IMAGES = 200  # validation images scored at the end of each run: what it is judged on, cheaply


def budget_form(cfg: Config, form: str, steps: int, minutes: float) -> Config:
    """`cfg` bounded by one budget form: `steps` steps, one epoch of `steps` batches, or `minutes`."""
    if form == "steps":
        sets: dict[str, Any] = {"train.max_steps": steps}
    elif form == "epochs":
        sets = {"train.epochs": 1, "data.train_limit": steps * cfg.train.batch_size}
    elif form == "minutes":
        sets = {"train.max_minutes": minutes}
    else:
        raise ValueError(f"unknown budget form {form!r}; one of {', '.join(FORMS)}")
    return cfg.with_overrides({**sets, "data.eval_limit": EVAL_IMAGES})


def check_run(cfg: Config) -> dict[str, Any]:
    """Train `cfg` (no run folder) and say how it went."""
    from .train import train
    started = time.perf_counter()
    row: dict[str, Any] = {"seed": cfg.train.seed}
    try:
        m = train(cfg, None, progress=False)
    except NonFiniteLossError as e:
        row.update(outcome="diverged", error=str(e).splitlines()[0][:300])
    except DatasetMissingError as e:
        row.update(outcome="no data", error=str(e).splitlines()[0][:300])
    else:
        value = m.get("val_elbo_nats", math.nan)
        ok = m["skipped_steps"] == 0 and math.isfinite(value)
        row.update(outcome="trained" if ok else ("skipped updates" if m["skipped_steps"] else "non-finite bound"),
                   steps=m["step"], warmup_steps=m["warmup_steps"], skipped_steps=m["skipped_steps"],
                   val_elbo_nats=value if math.isfinite(value) else None)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def check_presets(names: list[str], seeds: list[int], steps: int, minutes: float, device: str,
                  data_dir: str | None = None, images: str | None = None,
                  forms: tuple[str, ...] = FORMS) -> dict[str, Any]:
    rows, commit = [], (git_revision() or "")[:7]
    for name in names:
        base = preset(name).override("train.device", device)
        if data_dir:
            base = base.override("data.data_dir", data_dir)
        if images and base.data.dataset == "image-folder":
            base = base.override("data.image_folder", images)
        for form in forms:
            for seed in seeds:
                row = check_run(budget_form(base.override("train.seed", seed), form, steps, minutes))
                rows.append({"preset": name, "form": form, **row, "commit": commit})
                print(f"{name:>22}  {form:>7}  seed {seed}  {row['outcome']:<16} "
                      + (f"step {row['steps']:>4}, warm-up {row['warmup_steps']:>3}, skipped {row['skipped_steps']}, "
                         f"val -ELBO {row['val_elbo_nats'] or float('nan'):.1f}" if "steps" in row else row["error"])
                      + f"  ({row['seconds']:.0f} s)", flush=True)
    return {"date": time.strftime("%Y-%m-%d"), "commit": git_revision(), "machine": machine(), "device": device,
            "steps": steps, "minutes": minutes, "seeds": seeds, "runs": rows,
            "passed": sorted({r["preset"] for r in rows} - {r["preset"] for r in rows if r["outcome"] != "trained"})}


def merge(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two checks as one (other presets, or more seeds): the later's date, commit and machine; both
    commands; the runs of both, the later's replacing the earlier's of the same preset, form and seed."""
    key = ("preset", "form", "seed")
    fresh = {tuple(r[k] for k in key) for r in later["runs"]}
    runs = [r for r in earlier["runs"] if tuple(r[k] for k in key) not in fresh] + later["runs"]
    failed = {r["preset"] for r in runs if r["outcome"] != "trained"}
    return {**later, "command": [*earlier.get("command", []), *later["command"]], "runs": runs,
            "passed": sorted({r["preset"] for r in runs} - failed)}


def preset_names(text: str) -> list[str]:
    from .config import ConfigError
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ConfigError(f"--presets: unknown {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    return names


def summary_table(result: dict[str, Any]) -> str:
    """The check as docs/benchmarks.md shows it (a test keeps the two the same): one row per preset
    and budget form, its seeds' outcomes, the steps and warm-up of the runs, and the skipped updates."""
    lines = ["| preset | budget | seeds trained | steps reached | warm-up (steps) | skipped updates |",
             "| --- | --- | --- | --- | --- | --- |"]
    runs = result["runs"]
    order = list(PRESETS)
    for name in sorted({r["preset"] for r in runs}, key=lambda n: order.index(n) if n in order else len(order)):
        for form in FORMS:
            rows = [r for r in runs if r["preset"] == name and r["form"] == form]
            if not rows:
                continue
            ran = [r for r in rows if "steps" in r]
            trained = sum(r["outcome"] == "trained" for r in rows)
            others = sorted({r["outcome"] for r in rows if r["outcome"] != "trained"})
            outcome = f"{trained} of {len(rows)}" + (f" ({', '.join(others)})" if others else "")
            lines.append(f"| {name} | {form} | {outcome} | {_span(ran, 'steps')} | {_span(ran, 'warmup_steps')} | "
                         f"{sum(r['skipped_steps'] for r in ran)} |")
    return "\n".join(lines)


def _span(rows: list[dict[str, Any]], key: str) -> str:
    """The range of `key` over `rows`: 27, 11-27, or - for none."""
    values = [r[key] for r in rows]
    if not values:
        return "-"
    return str(min(values)) if min(values) == max(values) else f"{min(values)}-{max(values)}"
