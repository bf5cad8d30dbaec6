"""The checks that look across sections of a space file: the base preset with `data:` and `fixed:`,
points to evaluate against the searched distributions, the scheduler against the training budget,
and a resumed search's file against the one it started with."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matnet.config import SECTIONS, ConfigError, key_type

from .errors import fail
from .nodes import Distribution, encode
from .schema import CategoricalParam, FloatParam, IntParam, SpaceFile


def base_overrides(path: str, settings: SpaceFile, cwd: str | None) -> dict[str, Any]:
    """`data:` and `fixed:` as dotted config overrides of the base preset, each checked by matnet's
    config; a relative data directory made absolute (trials run in folders of their own)."""
    from matnet.data import source_problems
    from matnet.presets import PRESETS, preset

    if settings.base not in PRESETS:
        raise fail(path, "base", f"unknown preset {settings.base!r}; use one of {', '.join(PRESETS)}")
    overrides: dict[str, Any] = {}
    for name, value in settings.data.items():
        try:
            key_type(f"data.{name}")
        except ConfigError as e:
            raise fail(path, f"data.{name}", f"unknown data setting ({e})") from None
        overrides[f"data.{name}"] = value
    for key, value in _dotted(settings.fixed).items():
        try:
            key_type(key)
        except ConfigError as e:
            raise fail(path, f"fixed.{key}", f"not a matnet config key ({e})") from None
        if key in overrides:
            raise fail(path, f"fixed.{key}", "also set under data:; keep one of them")
        overrides[key] = value
    config = preset(settings.base)
    for key, value in overrides.items():
        try:
            config = config.override(key, value)
        except ConfigError as e:
            where = key if key.startswith("data.") and key[5:] in settings.data else f"fixed.{key}"
            raise fail(path, where, f"{e}; fix the value") from None
    # A relative data directory is made absolute (trials run in folders of their own), unless it is
    # the default ./data and not there (then each data set falls back to its packaged copy, if any).
    from matnet.data import DEFAULT_DATA_DIR
    data_dir = Path(config.data.data_dir).expanduser()
    absolute = (Path(cwd or os.getcwd()) / data_dir).resolve()
    if not data_dir.is_absolute() and (absolute.is_dir() or config.data.data_dir != DEFAULT_DATA_DIR):
        overrides["data.data_dir"] = str(absolute)
    problems = source_problems(config.data)
    if problems:
        raise fail(path, problems[0].split("=", 1)[0], problems[0])
    return overrides


def _dotted(fixed: dict[str, Any]) -> dict[str, Any]:
    """`fixed:` as dotted keys: a config section given as a mapping is flattened into its keys."""
    out: dict[str, Any] = {}
    for name, value in fixed.items():
        if name in SECTIONS and isinstance(value, dict):
            out.update({f"{name}.{key}": v for key, v in value.items()})
        else:
            out[name] = value
    return out


def check_points(space: Any) -> None:
    dists = space.distributions()
    for i, point in enumerate(space.settings.points_to_evaluate):
        for name, value in point.items():
            where = f"points_to_evaluate[{i}].{name}"
            if name not in dists:
                raise fail(space.path, where, f"not a searched parameter; use one of: {', '.join(dists)}")
            _check_in(space.path, where, dists[name], value)


def _check_in(path: str, where: str, dist: Distribution, value: Any) -> None:
    if isinstance(dist, CategoricalParam):
        if encode(value) not in [encode(c) for c in dist.choices]:
            raise fail(path, where, f"{value!r} is not one of the choices {dist.choices}; use one of them")
    elif isinstance(dist, (FloatParam, IntParam)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(path, where, f"{value!r} must be a number")
        if isinstance(dist, IntParam) and not float(value).is_integer():
            raise fail(path, where, f"{value!r} must be an integer")
        if not dist.low <= value <= dist.high:
            raise fail(path, where, f"{value!r} is outside [{dist.low}, {dist.high}]; use a value inside the bounds")


def check_base(space: Any) -> None:
    """The base preset with `data:` and `fixed:` must be a config matnet can train, as far as the
    searched keys do not change it (matnet/validate.py; each sampled trial is validated too)."""
    from matnet.data import DatasetMissingError
    from matnet.validate import problems

    searched = {node.key for node in space.nodes if node.key is not None}
    try:
        found = problems(space.base_config())
    except DatasetMissingError as e:
        raise fail(space.path, "data", f"{e}") from None
    for problem in found:
        if any(key in problem for key in searched):
            continue  # a searched value replaces it in every trial
        raise fail(space.path, _where(problem, space), problem)


def _where(problem: str, space: Any) -> str:
    """The section of the file that set the key a problem names (the preset's own value: base)."""
    for key in space.base_overrides:
        if key in problem and key != "data.data_dir":
            name = key.split(".", 1)[1]
            return key if key.startswith("data.") and name in space.settings.data else f"fixed.{key}"
    return f"base ({space.settings.base})"


def check_schedule(space: Any) -> None:
    """A full trial's reports must be countable from the file (a strategy's scheduler counts them;
    search/tune/strategies/ checks its own settings against them), and the metric must be one a
    trial reports."""
    from matnet.data import DatasetMissingError

    try:
        space.reports_per_trial()
    except (ConfigError, DatasetMissingError) as e:
        raise fail(space.path, "data", f"{e}") from None
    if space.settings.experiment.metric.startswith("val_kl_per_layer"):
        raise fail(space.path, "experiment.metric", "per-layer KLs are reported as val_kl_0, val_kl_1, ...; "
                                                    "use one of those")


def check_resume_compatible(saved: Any, new: Any) -> None:
    """A resumed search keeps its original space: the Optuna study holds its distributions, and a
    categorical whose choices change breaks it. Any change to what is searched is an error."""
    old_dists, new_dists = saved.distributions(), new.distributions()
    for name, dist in new_dists.items():
        old = old_dists.get(name)
        if old is None:
            continue
        where = f"search.{name}"
        if isinstance(dist, CategoricalParam) and isinstance(old, CategoricalParam) and dist.choices != old.choices:
            raise fail(new.path, f"{where}.choices", f"changed from {old.choices} to {dist.choices} since the search "
                                                     f"started; Optuna cannot change a categorical's choices: restore "
                                                     f"them, or start a new search with --name")
        ignored = {"when", "otherwise", "key"}
        if dist.model_dump(exclude=ignored) != old.model_dump(exclude=ignored):
            raise fail(new.path, where, "changed since the search started; restore it (the saved copy is space.yaml "
                                        "in the search directory) or start a new search with --name")
    if saved.settings.experiment.num_samples != new.settings.experiment.num_samples:
        raise fail(new.path, "experiment.num_samples", f"changed from {saved.settings.experiment.num_samples} to "
                                                       f"{new.settings.experiment.num_samples} since the search started; "
                                                       f"a resumed search keeps its trials: restore it, or start a new "
                                                       f"search with --name to run more")
    for section in ("strategy", "search", "scheduler", "sampler", "base", "data", "fixed", "points_to_evaluate"):
        if getattr(saved.settings, section) != getattr(new.settings, section):
            raise fail(new.path, section, "differs from the search being resumed; restore it (see space.yaml in "
                                          "the search directory) or start a new search with --name")
