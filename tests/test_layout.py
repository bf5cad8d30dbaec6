"""The layout's rules, checked on the source: small files, no import cycle between the project's
modules (imports at module level: a function's own late import is how the Ray side stays optional),
and matnet/ never importing Ray, Optuna or MLflow (anywhere in a file)."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("matnet", "search")


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported(name: str, path: Path, tree: ast.Module, top_level_only: bool) -> set[str]:
    """Modules `name` imports (absolute names), at module level or anywhere."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def test_no_file_of_matnet_search_or_scripts_is_over_300_lines():
    files = [*modules().values(), *(ROOT / "scripts").glob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_no_import_cycle_between_the_projects_modules():
    mods = modules()
    graph = {}
    for name, path in mods.items():
        deps = imported(name, path, ast.parse(path.read_text()), top_level_only=True)
        # a package's module imports its package's __init__ first: not an edge of its own making
        graph[name] = {d for d in deps if d in mods and d != name and not name.startswith(d + ".")}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_matnet_never_imports_ray_optuna_or_mlflow():
    bad = {}
    for name, path in modules().items():
        if name.startswith("matnet"):
            deps = imported(name, path, ast.parse(path.read_text()), top_level_only=False)
            hits = sorted(d for d in deps if d.split(".")[0] in ("ray", "optuna", "mlflow", "search"))
            if hits:
                bad[name] = hits
    assert not bad, bad
