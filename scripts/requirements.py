"""Print the project's requirements from pyproject.toml, one a line: its dependencies and those of
the extras named on the command line (comma-separated). scripts/setup.sh installs them alone when
MATNET_DEPS_ONLY=1: docker/Dockerfile's dependency layer, which a code change leaves alone.

    python scripts/requirements.py cluster
"""
from __future__ import annotations

import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    sys.exit("scripts/requirements.py: needs Python 3.11+ (tomllib); the Docker image has it")


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        sys.exit(f"scripts/requirements.py: no extra {unknown[0]!r} in pyproject.toml (it has {', '.join(optional)})")
    out = list(project["dependencies"])
    for extra in extras:
        out += [r for r in optional[extra] if r not in out]
    return out


if __name__ == "__main__":
    names = [e for e in (sys.argv[1] if len(sys.argv) > 1 else "").split(",") if e]
    print("\n".join(requirements(names)))
