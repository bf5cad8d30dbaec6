"""Recorded learning curves: every report of many configurations of a space, trained to their full
budget on real data, in one plain-JSON file that the surrogate and the simulator read.

    python -m search.bench curves SPACE.yaml --configs N [--repeats K --seeds S] --out FILE
    python -m search.bench curves --from STORAGE/NAME --out FILE     # harvested from a finished search

Recording draws N configurations at random from the space (Optuna's RandomSampler over the space's
own define-by-run function, so they are what a search could draw) and trains each with matnet.train,
in this process, exactly as a search trial trains it (the same config, the same seed), to its whole
budget. The first K of them are trained again with seeds 1..S-1 (`train.seed`), so that the training
noise of a configuration is measured, not assumed. Every report is kept: its training step, the
space's metric, and the wall seconds since the previous report (training and the evaluation that
makes the report: what a trial slot spends). The file is rewritten (atomically) after every run, and
a recording that stops is continued by running the same command again.

Harvesting reads a search folder's own files: the ledger (trials.json) and the history every trial
keeps inside its latest checkpoint (metrics.jsonl). Those hold training seconds only, so a harvested
report's `seconds` is its training time; a trial ASHA stopped gives a partial curve (`complete: false`).
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from ..store.errors import RunError

FORMAT = "matnet-search/curves/1"


class CurvesError(RunError):
    """A curves file that cannot be read or continued; one line with the fix."""


@dataclass
class Report:
    step: int
    value: Optional[float]          # the space's metric at this report (None: not finite)
    seconds: float                  # since the previous report (wall; harvested: training time)


@dataclass
class Curve:
    id: int                         # draw number; a repeat shares the id of its configuration
    params: dict[str, Any]          # as Optuna stores them (search.space decodes them)
    seed: int                       # train.seed
    reports: list[Report] = field(default_factory=list)
    complete: bool = True           # trained its whole budget
    error: Optional[str] = None     # why a run stopped early (divergence), when it did

    @property
    def final(self) -> Optional[float]:
        return self.reports[-1].value if self.reports and self.complete else None


@dataclass
class CurveSet:
    space_file: str
    space_text: str
    metric: str
    mode: str
    reports_per_trial: int
    report_steps: list[int]         # the training step of each report of a full trial
    source: str                     # "recorded" or "harvested from STORAGE/NAME"
    curves: list[Curve] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    def main(self) -> list[Curve]:
        """One curve per configuration: the run with the lowest seed."""
        best: dict[int, Curve] = {}
        for c in self.curves:
            if c.id not in best or c.seed < best[c.id].seed:
                best[c.id] = c
        return [best[i] for i in sorted(best)]

    def repeats(self) -> dict[int, list[Curve]]:
        """Configurations trained with several seeds: id -> their curves."""
        by_id: dict[int, list[Curve]] = {}
        for c in self.curves:
            by_id.setdefault(c.id, []).append(c)
        return {i: sorted(cs, key=lambda c: c.seed) for i, cs in by_id.items() if len(cs) > 1}


def save(curves: CurveSet, path: Path) -> None:
    from matnet.outputs import write_text
    write_text(path, json.dumps(asdict(curves), indent=None, separators=(",", ":")) + "\n")


def load(path: str | Path) -> CurveSet:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CurvesError(f"{path}: no such file; record curves with python -m search.bench curves SPACE.yaml "
                          f"--configs N --out {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CurvesError(f"{path}: not a curves file ({type(e).__name__}: {e}); record it again") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CurvesError(f"{path}: not a curves file of this version (format {FORMAT}); record it again with "
                          f"python -m search.bench curves")
    try:
        curves = [Curve(**{**c, "reports": [Report(**r) for r in c["reports"]]}) for c in raw.pop("curves")]
        return CurveSet(**raw, curves=curves)
    except (TypeError, KeyError) as e:
        raise CurvesError(f"{path}: a damaged curves file ({e}); record it again") from None


def curves_space(curves: CurveSet) -> Any:
    """The space the curves were recorded from, as it was then (its text is in the curves file)."""
    from ..space import load_space
    return load_space(curves.space_file, text=curves.space_text)


# ---- recording ---------------------------------------------------------------------------------------
def draws(space: Any, n: int, seed: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(draw number, params) of configurations matnet can train, drawn at random from the space;
    a draw that makes no trainable config is skipped, as the platform's searcher skips it."""
    from matnet.config import ConfigError
    drawn = space.sample(n * 4 + 50, seed=seed)
    kept = 0
    for i, params in enumerate(drawn):
        try:
            space.valid_trial_config(params)
        except ConfigError:
            continue
        yield i, params
        kept += 1
        if kept == n:
            return
    raise CurvesError(f"{space.path}: too few of {len(drawn)} random draws make a trainable config; check the space "
                      f"with python -m search.run {space.path} --dry-run")


def train_curve(space: Any, curve_id: int, params: dict[str, Any], seed: int) -> Curve:
    """One configuration trained to its whole budget as a trial would train it; every report kept."""
    from matnet.nonfinite import NonFiniteLossError
    from matnet.train import train

    metric = space.settings.experiment.metric
    config = space.trial_config(params).override("train.seed", seed)
    curve = Curve(curve_id, dict(params), seed)
    clock = [time.monotonic()]

    def report(metrics: dict[str, Any], _checkpoint: Any) -> None:
        now = time.monotonic()
        value = metrics.get(metric)
        finite = isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
        curve.reports.append(Report(int(metrics["step"]), float(value) if finite else None, round(now - clock[0], 4)))
        clock[0] = now

    try:
        train(config, None, report=report, progress=False)
    except NonFiniteLossError as e:
        curve.complete, curve.error = False, str(e).splitlines()[0][:300]
    return curve


def record(space_file: Path, configs: int, repeats: int, seeds: int, out: Path, draw_seed: int = 0,
           threads: int = 1, progress: bool = True) -> CurveSet:
    """Record (or continue recording) `configs` configurations and `repeats` x `seeds` runs into `out`."""
    import torch
    from tqdm import tqdm

    from matnet.budget import budget

    from ..space import load_space

    space = load_space(space_file)
    torch.set_num_threads(threads)
    plan = budget(space.base_config())
    steps = [min(plan.eval_every * (i + 1), plan.total_steps) for i in range(plan.evaluations)]
    base_seed = space.base_config().train.seed
    if out.exists():
        curves = load(out)
        if curves.space_text != space.raw_text:
            raise CurvesError(f"{out} was recorded from another version of {space_file}; give another --out")
    else:
        curves = CurveSet(str(space_file), space.raw_text, space.settings.experiment.metric,
                          space.settings.experiment.mode, plan.evaluations, steps, "recorded",
                          cost={"seconds": 0.0, "runs": 0, "threads": threads, "draw_seed": draw_seed},
                          machine={"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                                   "torch": torch.__version__})
    done = {(c.id, c.seed) for c in curves.curves}
    chosen = list(draws(space, configs, draw_seed))
    todo = [(i, p, base_seed) for i, p in chosen]
    todo += [(i, p, base_seed + s) for i, p in chosen[:repeats] for s in range(1, seeds)]
    todo = [t for t in todo if (t[0], t[2]) not in done]
    bar = tqdm(todo, desc="curves", unit="run", disable=not progress, dynamic_ncols=True)
    for curve_id, params, seed in bar:
        started = time.monotonic()
        curves.curves.append(train_curve(space, curve_id, params, seed))
        curves.cost["seconds"] = round(curves.cost["seconds"] + time.monotonic() - started, 2)
        curves.cost["runs"] = len(curves.curves)
        save(curves, out)
    return curves


# ---- harvesting ----------------------------------------------------------------------------------------
def harvest(search_dir: str) -> CurveSet:
    """The curves of a finished (or interrupted) search, from its own files."""
    from matnet.budget import budget
    from matnet.folders import RUN_METRICS

    from ..store import storage
    from ..store.folder import SearchFolder
    from ..store.ledger import read_records

    folder = SearchFolder(search_dir)
    info = folder.read_info()
    space = folder.saved_space(info)
    metric = space.settings.experiment.metric
    plan = budget(space.base_config())
    steps = [min(plan.eval_every * (i + 1), plan.total_steps) for i in range(plan.evaluations)]
    curves = CurveSet(info.space_file, space.raw_text, metric, space.settings.experiment.mode, plan.evaluations,
                      steps, f"harvested from {search_dir}")
    for n, record_ in enumerate(sorted(read_records(folder).values(), key=lambda r: r.trial_id)):
        history = None
        for relative in reversed(record_.checkpoints):  # the latest kept checkpoint has the whole history
            path = folder.file(relative + "/" + RUN_METRICS)
            if storage.exists(path):
                history = [json.loads(line) for line in storage.read_text(path).splitlines() if line.strip()]
                break
        if not history:
            continue
        reports, previous = [], 0.0
        for m in history:
            value = m.get(metric)
            finite = isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
            train_s = float(m.get("train_seconds", previous))
            reports.append(Report(int(m["step"]), float(value) if finite else None, round(train_s - previous, 4)))
            previous = train_s
        seed = int(space.trial_config(record_.params).train.seed)
        complete = bool(history[-1].get("final")) and record_.outcome == "completed"
        curves.curves.append(Curve(n, dict(record_.params), seed, reports, complete,
                                   record_.error if record_.outcome in ("diverged", "error") else None))
    if not curves.curves:
        raise CurvesError(f"{search_dir}: no trial kept a checkpoint with its history; nothing to harvest")
    return curves


def main(argv: list[str]) -> int:
    from matnet.cli import ArgumentParser, at_least

    p = ArgumentParser(prog="python -m search.bench curves", description=__doc__.split("\n\n")[0])
    p.add_argument("space", nargs="?", help="a search-space YAML whose configurations are recorded")
    p.add_argument("--from", dest="search", metavar="STORAGE/NAME", help="harvest the curves of this search instead")
    p.add_argument("--configs", type=at_least(1), default=300, help="configurations to record (default: 300)")
    p.add_argument("--repeats", type=at_least(0), default=10,
                   help="of those, how many are trained again with other seeds (default: 10)")
    p.add_argument("--seeds", type=at_least(1), default=5, help="seeds of each repeated configuration (default: 5)")
    p.add_argument("--draw-seed", type=at_least(0), default=0, help="seed of the random draws (default: 0)")
    p.add_argument("--threads", type=at_least(1), default=1, help="torch threads (default: 1, as a 1-CPU trial)")
    p.add_argument("--out", required=True, help="the curves file (JSON); an unfinished one is continued")
    args = p.parse_args(argv)
    out = Path(args.out)
    if not out.resolve().parent.is_dir():
        raise CurvesError(f"--out {out}: its folder does not exist; create it first")
    if (args.space is None) == (args.search is None):
        raise CurvesError("give a SPACE.yaml to record, or --from STORAGE/NAME to harvest (one of them)")
    if args.search is not None:
        from ..store import storage
        where = args.search if storage.is_uri(args.search) else str(Path(args.search).resolve())
        curves = harvest(where)
        save(curves, out)
    else:
        curves = record(Path(args.space), args.configs, args.repeats, args.seeds, out, args.draw_seed, args.threads)
    n = len(curves.main())
    print(f"curves: {len(curves.curves)} runs of {n} configurations ({len(curves.repeats())} with several seeds) "
          f"-> {out}" + (f"; recording took {curves.cost['seconds'] / 3600:.2f} h" if curves.cost.get("seconds") else ""))
    return 0
