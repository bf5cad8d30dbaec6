"""python -m search.bench simulate: many simulated searches (simulate.py), every strategy x seed, on
recorded curves, replayed (`--model table`, the default) or predicted (`--model surrogate`), in a
pool of processes; the report anytime.py computes, shown and written as JSON and PNG.

Seeds: the strategies' settings were chosen on seeds 0-19; the figures the README shows are measured
on seeds no choice saw (`--first-seed 100 --seeds 50`)."""
from __future__ import annotations

import json
import time
from typing import Any

MODELS = ("table", "surrogate")


def variant_space(space: Any, spec: str, defaults: bool = False) -> tuple[str, Any]:
    """`NAME` or `NAME[section.key=value,...]` (e.g. tpe+asha[scheduler.grace_period=2]): the registered
    strategy and the space with those settings changed, for trying a strategy's settings; `defaults`:
    the space file's own strategy settings dropped first (spec.schema_defaults)."""
    import yaml

    from ..space import load_space
    from . import spec as specs
    name, changes = specs.parse(spec)
    if not changes and not defaults:
        return name, space
    raw = yaml.safe_load(space.raw_text)
    raw = specs.apply(specs.schema_defaults(raw) if defaults else raw, changes, name)
    return name, load_space(space.path, text=yaml.safe_dump(raw, sort_keys=False))


def make_model(curves: Any, space: Any, kind: str, table_seeds: int = 3, trees: int = 200) -> Any:
    if kind == "table":
        from .table import TableModel
        return TableModel(curves, space, min_seeds=table_seeds)
    from .surrogate import Surrogate
    return Surrogate(curves, space, trees=trees)


_WORKER: dict[str, Any] = {}


def _init_worker(curves_path: str, kind: str, table_seeds: int, defaults: bool) -> None:
    import optuna
    import torch

    from .curves import curves_space, load
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)  # a process per core: the GP sampler's torch must not take the other cores
    curves = load(curves_path)
    space = curves_space(curves)
    _WORKER.update(space=space, model=make_model(curves, space, kind, table_seeds), defaults=defaults)


def _run_one(task: tuple[str, int, dict[str, float], int, bool]) -> Any:
    from .simulate import simulate
    spec, seed, budget, workers, decision_time = task
    name, space = variant_space(_WORKER["space"], spec, _WORKER["defaults"])
    run = simulate(_WORKER["model"], space, name, seed, budget, workers, decision_time)
    run.strategy = spec
    run.decisions = []  # not sent back: the parity test reads them in-process
    return run


def simulate_many(curves_path: str, specs: list[str], seeds: list[int], budget: dict[str, float], workers: int,
                  jobs: int, kind: str = "table", table_seeds: int = 3, decision_time: bool = False,
                  defaults: bool = False, progress: bool = True) -> list[Any]:
    """Every strategy x seed until the largest budget (in every unit given), `jobs` processes at once
    (each builds the model once). A strategy does not know its budget, so a run cut at a smaller
    budget is that budget's run."""
    import multiprocessing

    from tqdm import tqdm

    tasks = [(spec, seed, budget, workers, decision_time) for seed in seeds for spec in specs]
    setup = (curves_path, kind, table_seeds, defaults)
    with multiprocessing.get_context("fork").Pool(jobs, _init_worker, setup) as pool:
        return list(tqdm(pool.imap(_run_one, tasks), total=len(tasks), desc="simulate", unit="run",
                         disable=not progress, dynamic_ncols=True))


def provenance() -> dict[str, Any]:
    """When, at which commit and on what machine a figure was made (every published row says so)."""
    from matnet.record import stamp
    return {k: v for k, v in stamp("").items() if k != "command"}


def parser() -> Any:
    from matnet.cli import ArgumentParser, at_least

    from ..tune import strategies
    simulable = [n for n in strategies.names() if strategies.get(n).simulable]
    p = ArgumentParser(prog="python -m search.bench simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("curves", help="a curves file (python -m search.bench curves ...)")
    p.add_argument("--model", choices=MODELS, default="table",
                   help="table: replay recorded runs (nearest recorded configuration, one recorded seed per "
                        "trial); surrogate: predicted curves with recorded noise (default: table)")
    p.add_argument("--table-seeds", type=at_least(1), default=3,
                   help="table mode: the recorded configurations with at least this many seeds (default 3)")
    p.add_argument("--strategies", default=",".join(simulable),
                   help=f"comma-separated; NAME or NAME[section.key=value;...] to change its settings "
                        f"(default: {', '.join(simulable)})")
    p.add_argument("--seeds", type=at_least(1), default=20, help="runs per strategy (default 20)")
    p.add_argument("--first-seed", type=at_least(0), default=0,
                   help="seeds FIRST..FIRST+SEEDS-1 (default 0; settings were chosen on 0-19: measure on 100 and up)")
    p.add_argument("--budgets", default="10,30,100", help="in full trials' worth of compute (default 10,30,100)")
    p.add_argument("--unit", choices=("seconds", "steps"), default="seconds",
                   help="compute counted in trial seconds (default) or training steps; the other is reported too")
    p.add_argument("--workers", type=at_least(1), default=4, help="trials at once (default 4)")
    p.add_argument("--jobs", type=at_least(1), default=2, help="processes (default 2)")
    p.add_argument("--decision-time", action="store_true",
                   help="put the strategies' own time on the clock (it then depends on the host's load)")
    p.add_argument("--default-settings", action="store_true",
                   help="each strategy with the schema's default settings (as a space that sets none gets it), "
                        "not the curves' space file's sampler/scheduler settings; NAME[...] changes apply on top")
    p.add_argument("--fidelity", action="store_true", help="also measure the surrogate's fidelity (K-fold)")
    p.add_argument("--json", help="write the report (and every run's curve) as JSON")
    p.add_argument("--plot", help="write the anytime curves as PNG")
    return p


def checked(args: Any, space: Any) -> tuple[list[str], list[float]]:
    """The strategies and budgets asked for; RunError (one line) for one that cannot be simulated."""
    from pathlib import Path

    from ..store.errors import RunError
    from ..tune import strategies

    simulable = [n for n in strategies.names() if strategies.get(n).simulable]
    specs = [s.strip().replace(";", ",") for s in args.strategies.split(",") if s.strip()]
    try:
        budgets = sorted({float(b) for b in args.budgets.split(",") if b.strip()})
    except ValueError:
        raise RunError(f"--budgets {args.budgets!r}: give numbers of full trials, e.g. 10,30,100") from None
    if not budgets or budgets[0] <= 0:
        raise RunError(f"--budgets {args.budgets!r}: give positive numbers of full trials, e.g. 10,30,100")
    for spec in specs:
        name = spec.partition("[")[0]
        if name not in simulable:
            raise RunError(f"--strategies: {name!r} cannot be simulated; use some of {', '.join(simulable)}"
                           + (" (pbt's trials change parameters as they train: no recorded curve stands in)"
                              if name == "pbt" else ""))
    for out in (args.json, args.plot):
        if out and not Path(out).resolve().parent.is_dir():
            raise RunError(f"{out}: its folder does not exist; create it first")
    for spec in specs:
        name, variant = variant_space(space, spec, args.default_settings)
        strategies.for_space(variant, name)
    return specs, budgets


def main(argv: list[str]) -> int:
    """python -m search.bench simulate CURVES [--model table] [--strategies LIST] --seeds N --first-seed F ..."""
    from pathlib import Path

    from ..tune import strategies
    from . import anytime, sim_report
    from .curves import curves_space, load

    args = parser().parse_args(argv)
    curves = load(args.curves)
    space = curves_space(curves)
    specs, budgets = checked(args, space)
    model = make_model(curves, space, args.model, args.table_seeds)
    full = {"steps": float(curves.report_steps[-1]), "seconds": round(float(model.full_seconds), 4)}
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    started = time.monotonic()
    runs = simulate_many(args.curves, specs, seeds, {u: max(budgets) * full[u] for u in full}, args.workers,
                         args.jobs, args.model, args.table_seeds, args.decision_time, args.default_settings)
    seconds = time.monotonic() - started
    experiment = space.settings.experiment
    reference = {k: round(float(getattr(model, k)), 4) for k in ("best_true", "median_true", "worst_true")}
    report = anytime.analyse(runs, budgets, full, experiment.mode, strategies.DEFAULT, reference, args.unit)
    report.update(curves=str(args.curves), model=args.model, seeds=seeds, workers=args.workers, strategies=specs,
                  decision_time=args.decision_time, default_settings=args.default_settings,
                  simulation_seconds=round(seconds, 1), jobs=args.jobs,
                  command="python -m search.bench simulate " + " ".join(argv), **provenance(),
                  verdict=anytime.verdict(report, strategies.DEFAULT))
    if args.model == "table":
        report.update(table_seeds=args.table_seeds, table_configurations=len(model.ids))
    if args.fidelity:
        from .surrogate import fidelity, noise_summary
        report.update(fidelity=fidelity(curves, space), noise=noise_summary(curves))
    sim_report.print_report(report, experiment.metric)
    print(f"\n{len(runs)} simulated searches in {seconds:.0f} s ({args.jobs} processes, {args.model} model)")
    if args.json:
        from matnet.outputs import write_text
        from .simulate import improvements
        rows = [{"strategy": r.strategy, "seed": r.seed, "trials": r.trials, "returned": r.returned,
                 "curve": improvements(r.curve)} for r in runs]
        write_text(args.json, json.dumps({**report, "runs": rows}) + "\n")
    if args.plot:
        sim_report.plot(report, experiment.metric, Path(args.plot))
    return 0
