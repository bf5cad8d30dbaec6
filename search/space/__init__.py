"""Search spaces: one YAML file -> a validated, compiled tree of parameter nodes -> one Optuna
define-by-run function and each trial's matnet config.

    schema.py    the file format (pydantic models of every section)
    errors.py    SpaceError and the translation of any mistake into one line: FILE: KEY: what; fix
    nodes.py     the compiled nodes: a scalar parameter, a `when` condition, a `repeat` block
    compile.py   load_space: read, parse, validate and compile a file
    checks.py    the checks across sections (base/data/fixed, points, scheduler vs budget, resume)
    space.py     Space: base config, drawing a trial, its config, the Optuna sampler

See spaces/quickstart.yaml for a commented example, and the README for the format.
"""
from .checks import check_resume_compatible
from .compile import load_space
from .errors import SpaceError
from .space import Space

__all__ = ["Space", "SpaceError", "check_resume_compatible", "load_space"]
