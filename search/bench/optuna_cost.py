"""What one suggest costs the driver as a study grows: Optuna's ask, the space's draws and tell, with
N finished trials (a fifth of them pruned, with intermediate values) and C running, on a journal file
as a search keeps it, for the platform's TPE with its whole history and with a bounded one
(search/tune/bounded_tpe.py).

    python -m search.bench optuna [--space spaces/compare.yaml] [--trials 1000,10000] [--running 64]
                                  [--history 200] [--asks 20] [--json PATH]

The finished trials are drawn at random (RandomSampler: cheap at any N) and told a value from a fixed
function of their draws, so every sampler meets the same study."""
from __future__ import annotations

import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any


def _study(space: Any, n: int, running: int, folder: Path) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState
    storage = JournalStorage(JournalFileBackend(str(folder / f"study-{n}.journal")))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    rng = random.Random(0)
    for i in range(n + running):
        trial = study.ask()
        space.suggest(trial)
        if i >= n:
            continue  # left running
        value = rng.uniform(80, 300)
        if i % 5 == 4:
            trial.report(value, rng.choice((40, 80, 120)))
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


def cost(space: Any, n: int, running: int, asks: int, history: int, folder: Path) -> dict[str, float]:
    """Median milliseconds of ask + the space's draws + tell, full history and bounded."""
    import optuna
    from ..tune.strategies.samplers import tpe_sampler
    study = _study(space, n, running, folder)
    out = {}
    for label, bound in (("full", 0), ("bounded", history)):
        space.settings.sampler.history = bound
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.sampler = tpe_sampler(space, seed=0)
        times = []
        for _ in range(asks):
            t0 = time.perf_counter()
            trial = study.ask()
            space.suggest(trial)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # told, and not one of the best
            times.append(1e3 * (time.perf_counter() - t0))
        out[f"{label}_ms"] = round(statistics.median(times), 1)
    return out


def main(argv: list[str]) -> int:
    import optuna
    from matnet.cli import ArgumentParser, at_least
    from matnet.outputs import check_output, write_json
    from matnet.record import stamp

    from ..space import load_space
    p = ArgumentParser(prog="python -m search.bench optuna", description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="spaces/compare.yaml")
    p.add_argument("--trials", default="1000,10000", help="finished trials in the study (comma-separated)")
    p.add_argument("--running", type=at_least(0), default=64, help="trials running meanwhile (default 64)")
    p.add_argument("--history", type=at_least(1), default=200, help="the bounded history's recent trials")
    p.add_argument("--asks", type=at_least(1), default=20, help="suggests timed at each size (default 20)")
    p.add_argument("--json", help="write the figures as JSON here")
    args = p.parse_args(argv)
    json_out = check_output(args.json, "--json") if args.json else None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(Path(args.space))
    rows = []
    with tempfile.TemporaryDirectory(prefix="matnet-optuna-") as tmp:
        for n in (int(x) for x in args.trials.split(",") if x.strip()):
            row = {"finished": n, "running": args.running, **cost(space, n, args.running, args.asks, args.history,
                                                                    Path(tmp))}
            rows.append(row)
            print(f"{n:>6} finished, {args.running} running: TPE {row['full_ms']:.1f} ms per suggest, "
                  f"bounded (best {space.settings.sampler.history_best} + recent {args.history}) "
                  f"{row['bounded_ms']:.1f} ms", flush=True)
    if json_out is not None:
        write_json(json_out, {**stamp("python -m search.bench optuna", argv), "space": args.space,
                              "history": args.history, "rows": rows})
    return 0
