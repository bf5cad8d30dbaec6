"""python -m search.bench [compare | curves | simulate | tables | scale | optuna] ... (search/bench/__init__.py)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and not argv[0].startswith("-") else None
    if command == "compare":
        from .compare import main as compare
        return compare(argv[1:])
    if command == "curves":
        from .curves import main as curves
        return curves(argv[1:])
    if command == "simulate":
        from .simulate_many import main as simulate
        return simulate(argv[1:])
    if command == "tables":
        from .doc_tables import main as tables
        return tables(argv[1:])
    if command == "optuna":
        from .optuna_cost import main as optuna_cost
        return optuna_cost(argv[1:])
    if command == "scale":
        from .scale import main as scale
        return scale(argv[1:])
    if command is not None:
        from ..store.errors import RunError
        raise RunError(f"no benchmark {command!r}; use compare, curves, simulate, tables, scale or optuna, or none "
                       f"for the overhead benchmark (python -m search.bench --help)")
    from .overhead import main as overhead
    return overhead(argv)


if __name__ == "__main__":
    from ..cli import run_cli
    run_cli(main)
