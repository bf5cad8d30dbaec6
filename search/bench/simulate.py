"""Search strategies in simulated time: the platform's own strategy objects (its Optuna searcher,
Ray Tune's schedulers: search/tune/strategies/) drive trials whose curves come from a surrogate of
recorded learning curves (surrogate.py), in an event loop with a simulated clock, W trials at once,
no Ray actors. The field's way to compare strategies at budgets real trials cannot afford (Syne
Tune's simulator back-end; Eggensperger et al. 2021, HPOBench; Klein et al. 2020, LCBench).

One simulated run does what Tune's controller does (ray.tune.execution.tune_controller): a free
worker asks the searcher for a configuration (`suggest`; the scheduler's `on_trial_add`), the
strategy's decision time added to the clock; each report arrives at its simulated time and the
scheduler decides first (continue or stop), the searcher sees only a trial that goes on; a trial that
trained its budget, was stopped or diverged ends (scheduler, then searcher: `on_trial_complete`) and
its worker takes the next configuration. Compute is counted in training steps (as search.bench
compare counts it): when the trials together have trained the budget, the run ends.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from ..store.keys import FINAL_KEY, ITERATION_KEY, STATUS_KEY, STEP_KEY, better
from ..store.outcome import Outcome, classify


@dataclass(eq=False)
class SimTrial:
    """What Tune's schedulers read of a trial; hashable by identity, as Tune's trials are (schedulers keep
    sets and dicts of them)."""
    trial_id: str
    config: dict[str, Any]
    reports: list[Any]
    index: int = 0                   # the next report
    status: str = "RUNNING"
    stopped_at: Optional[int] = None  # the step it ended at


class _Controller:
    """The part of Tune's controller a scheduler may ask about (PBT would ask for more: not simulable)."""
    def __init__(self):
        self.trials: list[SimTrial] = []

    def get_trials(self) -> list[SimTrial]:
        return self.trials

    def get_live_trials(self) -> list[SimTrial]:
        return [t for t in self.trials if t.status == "RUNNING"]


@dataclass
class SimRun:
    strategy: str
    seed: int
    budget_steps: int
    curve: list[list[float]] = field(default_factory=list)   # [steps spent, best value so far] per result
    trials: dict[str, int] = field(default_factory=dict)      # outcome -> count
    decisions: list[tuple[str, str, int]] = field(default_factory=list)  # (trial, params as JSON, step it ended)
    starts: list[int] = field(default_factory=list)           # steps spent when each trial started
    sim_seconds: float = 0.0
    decision_seconds: float = 0.0

    @property
    def final(self) -> Optional[float]:
        return self.curve[-1][1] if self.curve else None


def trial_seed(params: dict[str, Any], seed: int) -> int:
    """The noise seed of a trial: from its parameters and the run's seed, so that a real search
    replaying the same curves (replay.py) draws the same curve for the same configuration."""
    text = json.dumps(params, sort_keys=True, default=str) + f"#{seed}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def simulate(model: Any, space: Any, strategy_name: str, seed: int, budget_steps: int, workers: int,
             decision_time: bool = True) -> SimRun:
    """One simulated search of `space` with the registered strategy `strategy_name` (its sampler and
    scheduler seeded with `seed`), `workers` trials at once, until the trials have trained
    `budget_steps` steps. `model.curve(params, seed)` gives each trial's reports."""
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

    from ..store.study import MEMORY, StudyRef
    from ..tune import strategies

    experiment = space.settings.experiment
    metric, mode = experiment.metric, experiment.mode
    strategy = strategies.get(strategy_name)
    study = StudyRef(MEMORY, f"sim-{strategy_name}-{seed}-{uuid.uuid4().hex[:8]}")
    study.create(mode, space.points(), metric)
    searcher = strategy.searcher(space, study, seed=seed)
    scheduler = strategy.scheduler(space, seed=seed)
    controller = _Controller()
    run = SimRun(strategy_name, seed, budget_steps)
    events: list[tuple[float, int, SimTrial]] = []
    order, spent, best, finished_suggesting = 0, 0, None, False

    def start(now: float) -> None:
        nonlocal order, finished_suggesting
        if finished_suggesting:
            return
        trial_id = f"{len(controller.trials):05d}"
        t0 = time.perf_counter()
        params = searcher.suggest(trial_id)
        took = time.perf_counter() - t0
        run.decision_seconds += took
        if params is None or params == Searcher.FINISHED:
            finished_suggesting = True
            return
        trial = SimTrial(trial_id, dict(params), model.curve(params, trial_seed(params, seed)))
        controller.trials.append(trial)
        run.starts.append(spent)
        scheduler.on_trial_add(controller, trial)
        order += 1
        heapq.heappush(events, (now + (took if decision_time else 0.0) + trial.reports[0].seconds, order, trial))

    for _ in range(workers):
        start(0.0)
    while events:
        now, _, trial = heapq.heappop(events)
        report = trial.reports[trial.index]
        previous = trial.reports[trial.index - 1].step if trial.index else 0
        spent += report.step - previous
        last = trial.index == len(trial.reports) - 1
        diverged = report.value is None
        result = {ITERATION_KEY: trial.index + 1, STEP_KEY: report.step,
                  metric: math.nan if diverged else report.value,
                  FINAL_KEY: last and not diverged and report.step == space_steps(model),
                  STATUS_KEY: str(Outcome.DIVERGED if diverged else Outcome.RUNNING)}
        if not diverged and better(report.value, best, mode):
            best = report.value
        if best is not None:
            run.curve.append([spent, best])
        decision = scheduler.on_trial_result(controller, trial, result)
        if decision != TrialScheduler.STOP:
            searcher.on_trial_result(trial.trial_id, result)
        if spent >= budget_steps:
            run.sim_seconds = now
            break
        if decision == TrialScheduler.STOP or last or diverged:
            trial.status, trial.stopped_at = "TERMINATED", report.step
            scheduler.on_trial_complete(controller, trial, result)
            searcher.on_trial_complete(trial.trial_id, result=result)
            outcome = classify(result, metric)
            run.trials[str(outcome)] = run.trials.get(str(outcome), 0) + 1
            run.decisions.append((trial.trial_id, json.dumps(trial.config, sort_keys=True), report.step))
            start(now)
        else:
            trial.index += 1
            heapq.heappush(events, (now + trial.reports[trial.index].seconds, order, trial))
            order += 1
        run.sim_seconds = now
    run.trials["total"] = len(controller.trials)
    return run


def improvements(curve: list[list[float]]) -> list[list[float]]:
    """The points of a best-so-far curve where the best changed, and its last: the same step function."""
    out = [p for i, p in enumerate(curve) if i == 0 or p[1] != curve[i - 1][1]]
    return out + ([curve[-1]] if curve and out[-1] is not curve[-1] else [])


def space_steps(model: Any) -> int:
    """The training steps of a full trial: its last report's."""
    return int(model.steps[-1])


# ---- many runs --------------------------------------------------------------------------------------
def variant_space(space: Any, spec: str) -> tuple[str, Any]:
    """`NAME` or `NAME[section.key=value,...]` (e.g. tpe+asha[scheduler.grace_period=2]): the registered
    strategy and the space with those settings changed, for trying a strategy's settings."""
    import yaml

    from ..space import load_space
    from . import spec as specs
    name, changes = specs.parse(spec)
    if not changes:
        return name, space
    raw = specs.apply(yaml.safe_load(space.raw_text), changes)
    return name, load_space(space.path, text=yaml.safe_dump(raw, sort_keys=False))


_WORKER: dict[str, Any] = {}


def _init_worker(curves_path: str, trees: int) -> None:
    import optuna

    from .curves import load
    from .surrogate import Surrogate
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = load(curves_path)
    space = curves_space(curves)
    _WORKER.update(space=space, model=Surrogate(curves, space, trees=trees))


def _run_one(task: tuple[str, int, int, int, bool]) -> SimRun:
    spec, seed, budget_steps, workers, decision_time = task
    name, space = variant_space(_WORKER["space"], spec)
    run = simulate(_WORKER["model"], space, name, seed, budget_steps, workers, decision_time)
    run.strategy = spec
    run.decisions = []  # not sent back: the parity test reads them in-process
    return run


def curves_space(curves: Any) -> Any:
    """The space the curves were recorded from, as it was then (its text is in the curves file)."""
    from ..space import load_space
    return load_space(curves.space_file, text=curves.space_text)


def simulate_many(curves_path: str, specs: list[str], seeds: int, budget_steps: int, workers: int, jobs: int,
                  decision_time: bool = True, trees: int = 200, progress: bool = True) -> list[SimRun]:
    """Every strategy x seed at the largest budget, `jobs` processes at once (each fits the surrogate
    once). A strategy does not know its budget, so a run cut at a smaller budget is that budget's run."""
    import multiprocessing

    from tqdm import tqdm

    tasks = [(spec, seed, budget_steps, workers, decision_time) for seed in range(seeds) for spec in specs]
    with multiprocessing.get_context("fork").Pool(jobs, _init_worker, (curves_path, trees)) as pool:
        return list(tqdm(pool.imap(_run_one, tasks), total=len(tasks), desc="simulate", unit="run",
                         disable=not progress, dynamic_ncols=True))


def main(argv: list[str]) -> int:
    """python -m search.bench simulate CURVES [--strategies LIST] --seeds N --budgets B1,B2 --workers W ..."""
    from pathlib import Path

    from matnet.cli import ArgumentParser, at_least

    from ..store.errors import RunError
    from ..tune import strategies
    from . import anytime
    from .curves import load

    simulable = [n for n in strategies.names() if strategies.get(n).simulable]
    p = ArgumentParser(prog="python -m search.bench simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("curves", help="a curves file (python -m search.bench curves ...)")
    p.add_argument("--strategies", default=",".join(simulable),
                   help=f"comma-separated; NAME or NAME[section.key=value;...] to change its settings "
                        f"(default: {', '.join(simulable)})")
    p.add_argument("--seeds", type=at_least(1), default=20, help="runs per strategy (default 20)")
    p.add_argument("--budgets", default="10,30,100", help="in full trials' worth of training steps (default 10,30,100)")
    p.add_argument("--workers", type=at_least(1), default=4, help="trials at once (default 4)")
    p.add_argument("--jobs", type=at_least(1), default=2, help="processes (default 2)")
    p.add_argument("--no-decision-time", action="store_true", help="leave the strategies' own time off the clock")
    p.add_argument("--fidelity", action="store_true", help="also measure the surrogate's fidelity (K-fold)")
    p.add_argument("--json", help="write the report (and every run's curve) as JSON")
    p.add_argument("--plot", help="write the anytime curves as PNG")
    args = p.parse_args(argv)
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
    curves = load(args.curves)
    space = curves_space(curves)
    for spec in specs:
        name, variant = variant_space(space, spec)
        strategies.for_space(variant, name)
    full = int(curves.report_steps[-1])
    started = time.monotonic()
    runs = simulate_many(args.curves, specs, args.seeds, int(max(budgets) * full), args.workers, args.jobs,
                         not args.no_decision_time)
    seconds = time.monotonic() - started
    experiment = space.settings.experiment
    report = anytime.analyse(runs, [int(b * full) for b in budgets], full, experiment.mode, strategies.DEFAULT)
    report.update(curves=str(args.curves), seeds=args.seeds, workers=args.workers, strategies=specs,
                  simulation_seconds=round(seconds, 1), jobs=args.jobs,
                  verdict=anytime.verdict(report, strategies.DEFAULT))
    if args.fidelity:
        from .surrogate import fidelity, noise_summary
        report["fidelity"] = fidelity(curves, space)
        report["noise"] = noise_summary(curves)
    anytime.print_report(report, experiment.metric)
    print(f"\n{len(runs)} simulated searches in {seconds:.0f} s ({args.jobs} processes)")
    if args.json:
        from matnet.outputs import write_text
        write_text(args.json, json.dumps({**report, "runs": [{"strategy": r.strategy, "seed": r.seed,
                                                              "trials": r.trials, "starts": r.starts,
                                                              "curve": improvements(r.curve)}
                                                             for r in runs]}) + "\n")
    if args.plot:
        anytime.plot(report, experiment.metric, Path(args.plot))
    return 0
