"""Search strategies side by side on the same space and the same compute, on real trials:

    python -m search.bench compare SPACE.yaml --seeds N --budget STEPS [--json PATH] [--plot PNG]

Each strategy searches SPACE with N seeds, one run at a time (runs never share the CPU cores), until
its trials together have trained STEPS training steps (budget_stop.py says why steps). For
each it reports the best validation -ELBO reached as a function of the steps spent (median and
spread over seeds), the steps it needed to reach the best value random search found with the whole
budget, and the test IWAE of its exported best checkpoint (the space's `export:` settings).

Strategies: every registered one that trains fixed configurations (search/tune/strategies/), and

- tpe+asha-stock:    tpe+asha with Ray's stock OptunaSearch, which tells Optuna that an ASHA-stopped
                     trial is COMPLETE with its low-fidelity value (what the platform's searcher corrects).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from matnet.cli import ArgumentParser
from matnet.outputs import write_text

from ..space import Space, load_space
from ..store.errors import RunError
from ..tune import strategies
from . import spec
from .compare_report import DEFAULT, RunResult, analyse, plot, print_report

__all__ = ["RunResult", "analyse", "compare", "main", "run_one", "variant"]

STOCK = "tpe+asha-stock"  # tpe+asha with Ray's stock OptunaSearch in place of the platform's searcher


def strategy_names() -> list[str]:
    return [n for n in strategies.names() if strategies.get(n).simulable] + [STOCK]


def run_name(strategy: str, seed: int) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", strategy).strip("-") + f"-seed{seed}"


def variant(text: str, strategy: str, seed: int, defaults: bool = False) -> str:
    """The space file of one run: the strategy (NAME, or NAME[section.key=value;...] with its settings
    changed, as search.bench simulate takes it), the seed, no MLflow, no time limit (the step budget
    ends it) and trials enough for any budget; `defaults`: the file's own strategy settings dropped
    first (spec.schema_defaults)."""
    name, changes = spec.parse(strategy)
    raw = yaml.safe_load(text)
    if defaults:
        spec.schema_defaults(raw)
    raw["experiment"] = {**raw["experiment"], "name": run_name(strategy, seed), "num_samples": 100000,
                         "time_budget_s": 0}
    raw["strategy"] = DEFAULT if name == STOCK else name
    raw["sampler"] = {k: v for k, v in {**(raw.get("sampler") or {}), "seed": seed}.items() if k != "type"}
    raw["scheduler"] = {k: v for k, v in (raw.get("scheduler") or {}).items() if k != "type"}
    spec.apply(raw, changes)
    raw["mlflow"] = {"enabled": False}
    raw.pop("points_to_evaluate", None)  # the strategies start from nothing
    return yaml.safe_dump(raw, sort_keys=False)


def stock_searcher(space: Space):
    from ray.tune.search.optuna import OptunaSearch
    experiment = space.settings.experiment
    return OptunaSearch(space=space.suggest, metric=experiment.metric, mode=experiment.mode,
                        sampler=strategies.get(DEFAULT).sampler(space))


def run_one(space_file: Path, strategy: str, seed: int, budget: int, workdir: Path,
            defaults: bool = False) -> RunResult:
    from ..run import SearchOptions, run_search
    from ..tune.harness import Harness
    from ..store.folder import SearchFolder
    from ..store.ledger import read_records
    from ..store.ranking import outcome_counts
    from .budget_stop import StepBudget

    name = run_name(strategy, seed)
    path = workdir / f"{name}.yaml"
    path.write_text(variant(space_file.read_text(), strategy, seed, defaults))
    space = load_space(path, cwd=str(space_file.resolve().parent))
    experiment = space.settings.experiment
    stop = StepBudget(budget, experiment.metric, experiment.mode, workdir / f"{name}.budget.json")
    searcher = stock_searcher(space) if strategy.partition("[")[0] == STOCK else None
    outcome = run_search(space, SearchOptions(storage=str(workdir / "results")),
                         Harness(search_alg=searcher, stop=stop))
    if outcome.code != 0:
        raise RuntimeError(f"the {name} search ended with status {outcome.code}")
    folder = SearchFolder(str(workdir / "results" / name))
    summary = json.loads((workdir / "results" / name / "summary.json").read_text())
    evaluation = summary["best"]["evaluation"]
    return RunResult(strategy, seed, stop.curve, stop.spent, outcome_counts(read_records(folder)),
                     evaluation.get("nll_nats"), {k: evaluation.get(k) for k in ("iwae_k", "n_images", "split")})


def compare(space_file: Path, seeds: int, budget: int, names: list[str], workdir: Path | None = None,
            first_seed: int = 0, out: Path | None = None, defaults: bool = False,
            ) -> tuple[dict[str, Any], list[RunResult]]:
    """Every strategy with seeds first_seed..first_seed+seeds-1, one run at a time. With `out`, the
    report is rewritten after every run, and the runs an earlier command already wrote there (the same
    space, the same budget) are kept, not run again: a comparison that stopped, or one given more
    seeds, goes on by running the command again."""
    space = load_space(space_file)
    mode = space.settings.experiment.mode
    results = previous_runs(out, space.raw_text, budget) if out is not None else []
    done = {(r.strategy, r.seed) for r in results}
    with tempfile.TemporaryDirectory(prefix="matnet-compare-") as tmp:
        base = workdir or Path(tmp)
        for seed in range(first_seed, first_seed + seeds):
            for strategy in names:
                if (strategy, seed) in done:
                    continue
                print(f"compare: {strategy}, seed {seed} ...", flush=True)
                results.append(run_one(space_file, strategy, seed, budget, base, defaults))
                if out is not None:
                    write_text(out, to_json({**analyse(results, budget, mode), "space_text": space.raw_text}, results))
    return {**analyse(results, budget, mode), "space_text": space.raw_text}, results


def previous_runs(path: Path, space_text: str, budget: int) -> list[RunResult]:
    """The runs a comparison of the same space and budget already wrote to `path` (none if no file)."""
    if not path.exists():
        return []
    try:
        old = json.loads(path.read_text())
        runs = [RunResult(**r) for r in old["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"--json {path}: not a comparison this command can continue ({type(e).__name__}); give "
                       f"another --json") from None
    if old.get("space_text") != space_text or old.get("budget_steps") != budget:
        raise RunError(f"--json {path} holds a comparison of another space or budget; give another --json "
                       f"(or the same --budget and space file to continue it)")
    return runs


def to_json(report: dict[str, Any], results: list[RunResult]) -> str:
    return json.dumps({**report, "runs": [asdict(r) for r in results]}, indent=1) + "\n"


def main(argv: list[str]) -> int:
    """python -m search.bench compare SPACE.yaml --seeds N --budget STEPS [...]"""

    p = ArgumentParser(prog="python -m search.bench compare",
                                description="search strategies side by side on the same compute")
    p.add_argument("space", help="a search-space YAML whose trials take seconds (e.g. spaces/compare.yaml)")
    p.add_argument("--seeds", type=int, default=3, help="runs per strategy (seeds FIRST..FIRST+N-1)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="the first seed (default 0; strategies were tuned on seeds 0-19: seeds from 100 are new)")
    p.add_argument("--budget", type=int, required=True, help="training steps per run, all trials together")
    p.add_argument("--strategies", default=",".join(strategy_names()),
                   help=f"comma-separated, from {', '.join(strategy_names())} (default: all); "
                        f"NAME[section.key=value;...] changes its settings")
    p.add_argument("--json", help="write the report and every run's curve as JSON, after every run; a comparison "
                                  "of the same space and budget already there is continued")
    p.add_argument("--plot", help="write the best value against the steps spent as PNG")
    p.add_argument("--default-settings", action="store_true",
                   help="each strategy with the schema's default settings (as a space that sets none gets it), not "
                        "the space file's sampler/scheduler settings; NAME[...] changes apply on top")
    p.add_argument("--keep", help="keep the runs' search folders under this folder (default: a temporary one)")
    args = p.parse_args(argv)
    strategies = [s.strip().replace(";", ",") for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s.partition("[")[0] not in strategy_names()]
    if unknown or not strategies:
        raise RunError(f"--strategies {args.strategies!r}: use some of {', '.join(strategy_names())}")
    if args.seeds < 1 or args.budget < 1 or args.first_seed < 0:
        raise RunError("--seeds and --budget must be at least 1, --first-seed at least 0")
    for out in (args.json, args.plot):
        if out and not Path(out).resolve().parent.is_dir():
            raise RunError(f"{out}: its folder does not exist; create it first")
    keep = Path(args.keep).resolve() if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    out = Path(args.json) if args.json else None
    report, results = compare(Path(args.space), args.seeds, args.budget, strategies, keep, args.first_seed, out,
                              args.default_settings)
    from .simulate_many import provenance
    report.update(command="python -m search.bench compare " + " ".join(argv), **provenance())
    metric = load_space(args.space).settings.experiment.metric
    print_report(report, metric)
    if args.json:
        write_text(args.json, to_json(report, results))
    if args.plot:
        plot(report, metric, Path(args.plot))
    return 0
