"""Search spaces: one YAML file -> a validated model -> one Optuna define-by-run function.

A space file says everything about a search (see spaces/quickstart.yaml for a commented example):

    experiment:   name, metric, mode, num_samples, max_concurrent, resources, max_failures, ...
    base:         the matnet preset every trial starts from (tiny, mnist-conv, cifar10-conv, ...)
    data:         the data set (keys of matnet.config.DataConfig)
    fixed:        config keys set for every trial (nested sections or dotted keys)
    search:       the searched parameters, in order; each is an Optuna distribution
    scheduler:    asha (early stopping) or none
    sampler:      tpe (seeded, the default) or random
    points_to_evaluate: trials to run first
    mlflow:       experiment name, tracking URI, sample images per trial
    export:       IWAE evaluation of the best checkpoint (K, split, images)

A searched parameter is named by the dotted config key it sets (`train.lr`), or by a plain word
(`use_ar`) when it only steers other parameters through `when`. Distributions:

    {type: float, low: 1e-4, high: 3e-3, log: true}       trial.suggest_float
    {type: int, low: 0, high: 2000, step: 500}             trial.suggest_int
    {type: categorical, choices: [16, 32, 64]}             trial.suggest_categorical
    {type: repeat, count: {...}, scales: [7, 14], each: {modules: {...}, width: ..., ...}}

Every distribution may carry `when: {earlier_param: value}` (or `{earlier_param: {gt: 0}}`, with
eq, ne, in, not_in, gt, ge, lt, le): it is drawn only when all its conditions hold; otherwise the
config key keeps its fixed value, or takes `otherwise:`. A `repeat` block builds a list
(`model.meta_modules`): its count is drawn first, then every item's fields; a trial with n meta
modules uses the last n of `scales` (coarse to fine), so items are named by their scale
(`model.meta_modules.14x14.width`) and mean the same thing in every trial.

Every mistake is caught here, before Ray starts, as a one-line `SpaceError` that names the file,
the key path and the fix.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from matnet.config import Config, ConfigError, DataConfig
from matnet.presets import PRESETS, preset


class SpaceError(ValueError):
    """A search-space file that cannot be used; one line naming the file, the key and the fix."""


# Config keys that change how many reports a trial makes; searching one needs an explicit max_t.
BUDGET_KEYS = ("train.epochs", "train.max_steps", "train.eval_every_steps", "train.batch_size",
               "data.train_limit", "data.val_size", "data.dataset")
CONDITION_OPS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# The file format


class _Param(_Strict):
    # The config key this parameter sets; default: its name when the name is dotted, else none.
    key: Optional[str] = None
    # Draw this parameter only when these conditions on earlier parameters hold.
    when: Optional[dict[str, Any]] = None
    # The value the key takes when a condition does not hold (default: the fixed/base value).
    otherwise: Any = None


class FloatParam(_Param):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: Optional[float] = None

    @model_validator(mode="after")
    def _bounds(self) -> "FloatParam":
        if not math.isfinite(self.low) or not math.isfinite(self.high):
            raise ValueError("low and high must be finite numbers; fix the bounds")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g}); swap them")
        if self.log and self.low <= 0:
            raise ValueError(f"low must be > 0 when log is true (got {self.low:g}); raise low or drop log")
        if self.step is not None:
            if self.log:
                raise ValueError("step and log cannot be used together (Optuna); drop one of them")
            if self.step <= 0:
                raise ValueError(f"step must be > 0 (got {self.step:g}); fix step")
        return self


class IntParam(_Param):
    type: Literal["int"]
    low: int
    high: int
    step: int = 1
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> "IntParam":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high}); swap them")
        if self.step < 1:
            raise ValueError(f"step must be >= 1 (got {self.step}); fix step")
        if self.log and self.low < 1:
            raise ValueError(f"low must be >= 1 when log is true (got {self.low}); raise low or drop log")
        if self.log and self.step != 1:
            raise ValueError("step and log cannot be used together (Optuna); drop one of them")
        return self


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Any]

    @field_validator("choices")
    @classmethod
    def _choices(cls, v: list[Any]) -> list[Any]:
        if not v:
            raise ValueError("choices is empty; list at least one value")
        seen = [json.dumps(c, sort_keys=True) for c in v]
        dupes = sorted({s for s in seen if seen.count(s) > 1})
        if dupes:
            raise ValueError(f"choice {dupes[0]} is listed twice; remove the duplicate")
        return v

    def encoded(self) -> list[Any]:
        """Choices as Optuna takes them: plain scalars stay, lists and mappings become JSON text."""
        return [encode_choice(c) for c in self.choices]


Scalar = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class RepeatBlock(_Strict):
    type: Literal["repeat"]
    # How many items (meta modules): an int or categorical distribution, or a fixed number.
    count: Union[Scalar, int]
    # Scales from coarse to fine; a trial with n items uses the last n. Default: the base preset's.
    scales: Optional[list[int]] = None
    # The fields of every item: a fixed value or a distribution.
    each: dict[str, Union[Scalar, int, float, str, bool]]
    key: Optional[str] = None
    when: Optional[dict[str, Any]] = None
    otherwise: Any = None


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam, RepeatBlock], Field(discriminator="type")]


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0)
    # Fractional GPUs (0.25, 0.5) share one GPU between trials; above 1, whole GPUs only.
    gpu: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _gpu(self) -> "Resources":
        if self.gpu > 1 and not float(self.gpu).is_integer():
            raise ValueError(f"gpu={self.gpu:g}: above 1 a trial takes whole GPUs; use 1, 2, ... or a fraction below 1")
        return self


class Experiment(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    metric: str = "val_elbo_nats"
    mode: Literal["min", "max"] = "min"
    num_samples: int = Field(ge=1)
    # Trials running at once (0: as many as the cluster's resources allow).
    max_concurrent: int = Field(0, ge=0)
    resources: Resources = Resources()
    # A trial that crashes (or whose worker dies) restarts from its last checkpoint this many times.
    max_failures: int = Field(2, ge=0)
    # Checkpoints kept per trial: the best ones by `metric` (the latest is kept as well).
    keep_checkpoints: int = Field(2, ge=1)
    # Stop starting and running trials after this many seconds (0: no limit).
    time_budget_s: float = Field(0.0, ge=0)
    # Reuse trial worker processes between trials (saves process start-up and data loading).
    reuse_actors: bool = True


class Scheduler(_Strict):
    type: Literal["asha", "none"] = "asha"
    # Reports ("epochs": one per train.eval_every_steps, or per epoch) a trial makes before ASHA may stop it.
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)
    # Reports a full trial makes; default: counted from the fixed training budget.
    max_t: Optional[int] = Field(None, ge=1)
    brackets: int = Field(1, ge=1)


class Sampler(_Strict):
    type: Literal["tpe", "random"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(10, ge=0)
    # TPE over the joint distribution, grouped by the parameters a trial has (suits conditional spaces).
    multivariate: bool = True
    group: bool = True


class Mlflow(_Strict):
    enabled: bool = True
    # MLflow experiment (default: experiment.name).
    experiment: Optional[str] = None
    # Default: --tracking-uri, else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory.
    tracking_uri: Optional[str] = None
    # Images in the sample grid logged for every finished trial (0: none).
    sample_images: int = Field(64, ge=0)


class Export(_Strict):
    # Importance samples per image for the IWAE bound of the best checkpoint (the paper: 2500).
    iwae_k: int = Field(2500, ge=1)
    split: Literal["train", "valid", "test"] = "test"
    # Images evaluated (0: the whole split).
    limit: int = Field(0, ge=0)
    batch_size: int = Field(10, ge=1)
    rows_per_pass: int = Field(1000, ge=1)
    device: str = "auto"
    # Trials listed in the final table and in summary.json.
    top_trials: int = Field(5, ge=1)
    sample_images: int = Field(64, ge=0)


class SpaceFile(_Strict):
    experiment: Experiment
    base: str = "tiny"
    data: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    search: dict[str, Param]
    scheduler: Scheduler = Scheduler()
    sampler: Sampler = Sampler()
    points_to_evaluate: list[dict[str, Any]] = []
    mlflow: Mlflow = Mlflow()
    export: Export = Export()


# ---------------------------------------------------------------------------------------------
# Helpers


def encode_choice(c: Any) -> Any:
    return c if c is None or isinstance(c, (bool, int, float, str)) else json.dumps(c)


def decode_choice(p: CategoricalParam, v: Any) -> Any:
    for c in p.choices:
        if encode_choice(c) == v:
            return c
    return v


def scale_tag(scale: int) -> str:
    return "fc" if scale == 0 else f"{scale}x{scale}"


def _flatten_fixed(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`fixed` as dotted keys: nested sections are flattened down to the dataclass fields."""
    out: dict[str, Any] = {}
    sections = {f.name for f in dataclasses.fields(Config)}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and (key in sections or not prefix and k in sections):
            out.update(_flatten_fixed(v, key + "."))
        else:
            out[key] = v
    return out


def _config_field(key: str) -> tuple[Any, Any] | None:
    """(the dataclass type holding `key`'s last part, the field's type), or None if no such key."""
    tp: Any = Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(tp):
            return None
        hints = typing.get_type_hints(tp)
        if part not in hints:
            return None
        if i == len(parts) - 1:
            return tp, hints[part]
        tp = hints[part]
    return None


def _known_keys(key: str) -> str:
    parts = key.split(".")
    tp: Any = Config
    prefix = ""
    for part in parts[:-1]:
        hints = typing.get_type_hints(tp) if dataclasses.is_dataclass(tp) else {}
        if part not in hints or not dataclasses.is_dataclass(hints[part]):
            break
        tp, prefix = hints[part], f"{prefix}{part}."
    names = [f.name for f in dataclasses.fields(tp)] if dataclasses.is_dataclass(tp) else []
    return ", ".join(prefix + n for n in names)


def _cond_holds(cond: Any, value: Any) -> bool:
    if isinstance(cond, dict) and len(cond) == 1 and next(iter(cond)) in CONDITION_OPS:
        op, ref = next(iter(cond.items()))
        try:
            return {"eq": lambda: value == ref, "ne": lambda: value != ref,
                    "in": lambda: value in ref, "not_in": lambda: value not in ref,
                    "gt": lambda: value > ref, "ge": lambda: value >= ref,
                    "lt": lambda: value < ref, "le": lambda: value <= ref}[op]()
        except TypeError:
            return False
    return value == cond


# ---------------------------------------------------------------------------------------------
# The compiled space


@dataclasses.dataclass
class Space:
    """A validated search space: builds each trial's matnet Config and the Optuna search."""

    path: str
    spec: SpaceFile
    raw_text: str
    base_overrides: dict[str, Any]  # data + fixed, as dotted keys, data_dir made absolute

    # ---- names ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.experiment.name

    def target(self, name: str, p: Any) -> str | None:
        if p.key is not None:
            return p.key
        return name if "." in name else None

    def base_config(self) -> Config:
        return preset(self.spec.base).with_overrides(self.base_overrides)

    def repeat_scales(self, name: str, block: RepeatBlock) -> list[int]:
        if block.scales is not None:
            return list(block.scales)
        key = self.target(name, block)
        value = self.base_config().to_dict()
        for part in key.split("."):
            value = value[part]
        return [int(item["scale"]) for item in value]

    def param_names(self) -> dict[str, Any]:
        """Every Optuna parameter a trial may have, with its distribution (None for fixed fields)."""
        out: dict[str, Any] = {}
        for name, p in self.spec.search.items():
            if isinstance(p, RepeatBlock):
                if not isinstance(p.count, int):
                    out[f"{name}.count"] = p.count
                for scale in self.repeat_scales(name, p):
                    for field, spec in p.each.items():
                        if isinstance(spec, _Param):
                            out[f"{name}.{scale_tag(scale)}.{field}"] = spec
            else:
                out[name] = p
        return out

    # ---- Optuna --------------------------------------------------------------------------------
    @staticmethod
    def _suggest(trial: Any, name: str, p: Any) -> Any:
        if isinstance(p, FloatParam):
            return trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
        if isinstance(p, IntParam):
            return trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log)
        return trial.suggest_categorical(name, p.encoded())

    def _holds(self, when: dict[str, Any] | None, values: dict[str, Any], local: dict[str, Any] | None = None) -> bool:
        if not when:
            return True
        for ref, cond in when.items():
            if local is not None and ref in local:
                v = local[ref]
            elif ref in values:
                v = values[ref]
            else:
                return False  # the parameter it depends on was not drawn in this trial
            if not _cond_holds(cond, v):
                return False
        return True

    def _decoded(self, values: dict[str, Any]) -> dict[str, Any]:
        params = self.param_names()
        return {k: decode_choice(params[k], v) if isinstance(params.get(k), CategoricalParam) else v
                for k, v in values.items()}

    def suggest(self, trial: Any) -> None:
        """The define-by-run function: draws this trial's parameters in file order."""
        values: dict[str, Any] = {}
        for name, p in self.spec.search.items():
            if not self._holds(p.when, self._decoded(values)):
                continue
            if isinstance(p, RepeatBlock):
                if isinstance(p.count, int):
                    n = p.count
                else:
                    n = decode_choice(p.count, self._suggest(trial, f"{name}.count", p.count)) \
                        if isinstance(p.count, CategoricalParam) else self._suggest(trial, f"{name}.count", p.count)
                    values[f"{name}.count"] = n
                for scale in self.repeat_scales(name, p)[-int(n):]:
                    local: dict[str, Any] = {}
                    for field, spec in p.each.items():
                        if isinstance(spec, _Param):
                            if not self._holds(spec.when, self._decoded(values), local):
                                continue
                            pname = f"{name}.{scale_tag(scale)}.{field}"
                            v = self._suggest(trial, pname, spec)
                            values[pname] = v
                            local[field] = decode_choice(spec, v) if isinstance(spec, CategoricalParam) else v
                        else:
                            local[field] = spec
            else:
                values[name] = self._suggest(trial, name, p)
        return None

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's parameters (as Optuna drew them) -> dotted config overrides."""
        values = self._decoded(params)
        out: dict[str, Any] = {}
        for name, p in self.spec.search.items():
            key = self.target(name, p)
            if isinstance(p, RepeatBlock):
                n = p.count if isinstance(p.count, int) else values.get(f"{name}.count")
                if n is None or not self._holds(p.when, values):
                    if "otherwise" in p.model_fields_set and key:
                        out[key] = p.otherwise
                    continue
                items = []
                for scale in self.repeat_scales(name, p)[-int(n):]:
                    item: dict[str, Any] = {"scale": scale}
                    for field, spec in p.each.items():
                        pname = f"{name}.{scale_tag(scale)}.{field}"
                        if not isinstance(spec, _Param):
                            item[field] = spec
                        elif pname in values:
                            item[field] = values[pname]
                        elif "otherwise" in spec.model_fields_set:
                            item[field] = spec.otherwise
                    items.append(item)
                out[key] = items
            elif key is None:
                continue
            elif name in values:
                out[key] = values[name]
            elif "otherwise" in p.model_fields_set:
                out[key] = p.otherwise
        return out

    def trial_config(self, params: dict[str, Any]) -> Config:
        return self.base_config().with_overrides(self.overrides(params))

    def points(self) -> list[dict[str, Any]]:
        """points_to_evaluate with categorical values encoded as Optuna stores them."""
        params = self.param_names()
        return [{k: encode_choice(v) if isinstance(params.get(k), CategoricalParam) else v for k, v in pt.items()}
                for pt in self.spec.points_to_evaluate]

    def make_sampler(self):
        import optuna
        s = self.spec.sampler
        if s.type == "random":
            return optuna.samplers.RandomSampler(seed=s.seed)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                              multivariate=s.multivariate, group=s.group and s.multivariate,
                                              constant_liar=True)

    def sample(self, n: int, seed: int | None = None) -> list[dict[str, Any]]:
        """n parameter sets as the sampler would draw them (no trials are run), points first."""
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = self.make_sampler() if seed is None else optuna.samplers.RandomSampler(seed=seed)
        study = optuna.create_study(sampler=sampler, direction="minimize" if self.spec.experiment.mode == "min" else "maximize")
        for pt in self.points():
            study.enqueue_trial(pt)
        out = []
        for _ in range(n):
            t = study.ask()
            self.suggest(t)
            out.append(dict(t.params))
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        return out

    # ---- budget --------------------------------------------------------------------------------
    def reports_per_trial(self) -> int:
        """How many results a full trial reports (ASHA's max_t)."""
        if self.spec.scheduler.max_t is not None:
            return self.spec.scheduler.max_t
        from matnet.budget import budget
        return budget(self.base_config()).evaluations


# ---------------------------------------------------------------------------------------------
# Loading and validation


def _fail(path: str, where: str, msg: str) -> SpaceError:
    return SpaceError(f"{path}: {where}: {msg}" if where else f"{path}: {msg}")


def _loc_str(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    tags = {"float", "int", "categorical", "repeat", "int-enum", "function-after", "function-before"}
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in tags or "[" in str(item):
            continue  # pydantic's union branch names: not part of the user's key path
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that holds the last key of `loc` (to list its known keys)."""
    tp: Any = SpaceFile
    i = 0
    items = list(loc[:-1])
    while i < len(items):
        item = items[i]
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if item not in tp.model_fields:
                return None
            tp = tp.model_fields[item].annotation
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin is list:
            tp = typing.get_args(tp)[0]
        elif origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        elif origin is Union or str(origin) == "typing.Union":
            options = {getattr(a.model_fields.get("type"), "annotation", None) and typing.get_args(
                a.model_fields["type"].annotation)[0]: a for a in _union_models(tp)}
            if item in options:
                tp = options[item]
            else:
                models = _union_models(tp)
                if not models:
                    return None
                tp = models[0]
                continue
        else:
            return None
        i += 1
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is Union:
        models = _union_models(tp)
        tag = loc[-2] if len(loc) > 1 else None
        for m in models:
            if "type" in m.model_fields and typing.get_args(m.model_fields["type"].annotation)[0] == tag:
                return m
        return models[0] if models else None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _union_models(tp: Any) -> list[type[BaseModel]]:
    out = []
    for a in typing.get_args(tp):
        while typing.get_origin(a) is Annotated:
            a = typing.get_args(a)[0]
        if typing.get_origin(a) is Union:
            out += _union_models(a)
        elif isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
    return out


def _pydantic_error(path: str, e: ValidationError) -> SpaceError:
    err = e.errors()[0]
    loc = tuple(err["loc"])
    where = _loc_str(loc)
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        known = ", ".join(k for k in model.model_fields) if model is not None else ""
        hint = f"; known keys here: {known}" if known else "; remove it or fix its spelling"
        return _fail(path, where, f"unknown key '{loc[-1]}'{hint}")
    if kind == "missing":
        return _fail(path, where, "is required; add it")
    if kind == "union_tag_not_found":
        return _fail(path, where, "a searched parameter needs a type: float, int, categorical or repeat "
                                  "(e.g. {type: float, low: 1.0e-4, high: 1.0e-2, log: true})")
    if kind == "union_tag_invalid":
        return _fail(path, where, f"type {err['input'].get('type')!r} is not known; use float, int, "
                                  f"categorical or repeat" if isinstance(err.get("input"), dict) else msg)
    if kind == "value_error":
        return _fail(path, where, msg.removeprefix("Value error, "))
    if kind == "literal_error":
        return _fail(path, where, f"{msg} (got {err.get('input')!r})")
    if kind == "string_pattern_mismatch":
        return _fail(path, where, f"{err.get('input')!r} is not a usable name; use letters, digits, '_', '.', '-'")
    shown = err.get("input")
    got = f" (got {shown!r})" if not isinstance(shown, (dict, list)) else ""
    return _fail(path, where, f"{msg[0].lower() + msg[1:]}{got}; fix the value")


def load_space(path: str | os.PathLike, *, text: str | None = None, cwd: str | None = None) -> Space:
    """Read and validate a space file. Raises SpaceError (one line) on any mistake."""
    p = str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise SpaceError(f"{p}: no such file; give the path of a search-space YAML (e.g. spaces/quickstart.yaml)") from None
        except OSError as e:
            raise SpaceError(f"{p}: cannot be read ({e.strerror}); check the path and permissions") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpaceError(f"{p}: not valid YAML at {at} ({problem}); fix the syntax there") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{p}: the file must be a mapping with experiment:, base:, search: ...; "
                         f"see spaces/quickstart.yaml")
    try:
        spec = SpaceFile.model_validate(raw)
    except ValidationError as e:
        raise _pydantic_error(p, e) from None
    return _check(p, spec, text, cwd)


def _check(p: str, spec: SpaceFile, text: str, cwd: str | None) -> Space:
    # base preset
    if spec.base not in PRESETS:
        raise _fail(p, "base", f"unknown preset {spec.base!r}; use one of {', '.join(PRESETS)}")
    base = preset(spec.base)

    # data and fixed -> dotted overrides, each checked against matnet's Config
    data_fields = {f.name for f in dataclasses.fields(DataConfig)}
    overrides: dict[str, Any] = {}
    for k, v in spec.data.items():
        if k not in data_fields:
            raise _fail(p, f"data.{k}", f"unknown data setting; known: {', '.join(sorted(data_fields))}")
        overrides[f"data.{k}"] = v
    for k, v in _flatten_fixed(spec.fixed).items():
        if _config_field(k) is None:
            raise _fail(p, f"fixed.{k}", f"not a matnet config key; known keys: {_known_keys(k)}")
        if k in overrides:
            raise _fail(p, f"fixed.{k}", "also set under data:; keep one of them")
        overrides[k] = v
    cfg = base
    for k, v in overrides.items():
        try:
            cfg = cfg.override(k, v)
        except ConfigError as e:
            section = "data" if k.startswith("data.") and k[5:] in spec.data else "fixed"
            where = k if section == "data" else f"fixed.{k}"
            raise _fail(p, where, f"{e}; fix the value") from None
    # A relative data directory is relative to where the search is started, not to a trial's directory.
    data_dir = Path(cfg.data.data_dir).expanduser()
    if not data_dir.is_absolute():
        overrides["data.data_dir"] = str((Path(cwd or os.getcwd()) / data_dir).resolve())
    from matnet.data import DATASETS
    if cfg.data.dataset not in DATASETS:
        raise _fail(p, "data.dataset", f"{cfg.data.dataset!r} is not known; use one of {', '.join(DATASETS)}")

    space = Space(p, spec, text, overrides)
    base_cfg = space.base_config()
    fixed_keys = set(overrides)

    # searched parameters: config keys exist, values fit them, conditions refer to earlier parameters
    defined: dict[str, Any] = {}
    targets: dict[str, str] = {}
    for name, prm in spec.search.items():
        where = f"search.{name}"
        key = space.target(name, prm)
        if prm.key is not None and _config_field(prm.key) is None:
            raise _fail(p, f"{where}.key", f"{prm.key!r} is not a matnet config key; known keys: {_known_keys(prm.key)}")
        if prm.key is None and "." in name and _config_field(name) is None:
            raise _fail(p, where, f"{name!r} is not a matnet config key; known keys: {_known_keys(name)} "
                                  f"(a helper parameter that sets no key is named without dots)")
        if key is not None:
            if key in targets and not prm.when:
                raise _fail(p, where, f"sets {key}, which search.{targets[key]} sets too; keep one, or give this "
                                      f"one a `when` condition (it then overrides the earlier one when it holds)")
            if key in fixed_keys and key != "data.data_dir":
                raise _fail(p, where, f"{key} is also set under fixed/data; remove it there (searched values win)")
        _check_when(p, where, prm.when, defined, None)
        if isinstance(prm, RepeatBlock):
            _check_repeat(p, where, name, prm, space, base_cfg, defined)
        else:
            if name in defined:
                raise _fail(p, where, "defined twice; give the second one another name")
            if key is not None:
                _check_values(p, where, key, prm, base_cfg)
            defined[name] = prm
        if key is not None:
            targets[key] = name

    # points to try first
    for i, pt in enumerate(spec.points_to_evaluate):
        where = f"points_to_evaluate[{i}]"
        params = space.param_names()
        for k, v in pt.items():
            if k not in params:
                raise _fail(p, f"{where}.{k}", f"not a searched parameter; use one of: {', '.join(params)}")
            _check_in_distribution(p, f"{where}.{k}", params[k], v)

    # the budget that ASHA counts in
    searched_keys = set(targets)
    if spec.scheduler.type == "asha" and spec.scheduler.max_t is None:
        clash = [k for k in BUDGET_KEYS if k in searched_keys]
        if clash:
            raise _fail(p, "scheduler.max_t", f"needed because {clash[0]} is searched (trials report a different "
                                              f"number of times); set max_t to the reports of the longest trial")
    if spec.scheduler.type == "asha" and spec.scheduler.grace_period > space.reports_per_trial():
        raise _fail(p, "scheduler.grace_period", f"{spec.scheduler.grace_period} is more than the "
                                                 f"{space.reports_per_trial()} reports a trial makes; lower it "
                                                 f"(or report more often with train.eval_every_steps)")
    if spec.experiment.metric.startswith("val_kl_per_layer"):
        raise _fail(p, "experiment.metric", "per-layer KLs are reported as val_kl_0, val_kl_1, ...; use one of those")
    return space


def _check_when(p: str, where: str, when: dict[str, Any] | None, defined: dict[str, Any],
                local: dict[str, Any] | None) -> None:
    if not when:
        return
    for ref, cond in when.items():
        if ref not in defined and (local is None or ref not in local):
            known = list(defined) + list(local or {})
            raise _fail(p, f"{where}.when.{ref}", f"'{ref}' is not a parameter defined before this one; "
                                                  f"define it earlier in search: or use one of: {', '.join(known) or '(none yet)'}")
        if isinstance(cond, dict):
            if len(cond) != 1 or next(iter(cond)) not in CONDITION_OPS:
                raise _fail(p, f"{where}.when.{ref}", f"a condition is a value, or one of "
                                                      f"{{{', '.join(o + ': ...' for o in CONDITION_OPS)}}}")
            op, v = next(iter(cond.items()))
            if op in ("in", "not_in") and not isinstance(v, list):
                raise _fail(p, f"{where}.when.{ref}.{op}", "must be a list of values")


def _check_in_distribution(p: str, where: str, prm: Any, v: Any) -> None:
    if isinstance(prm, CategoricalParam):
        if encode_choice(v) not in prm.encoded():
            raise _fail(p, where, f"{v!r} is not one of the choices {prm.choices}; use one of them")
    elif isinstance(prm, (FloatParam, IntParam)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(p, where, f"{v!r} must be a number")
        if isinstance(prm, IntParam) and not float(v).is_integer():
            raise _fail(p, where, f"{v!r} must be an integer")
        if not prm.low <= v <= prm.high:
            raise _fail(p, where, f"{v!r} is outside [{prm.low}, {prm.high}]; use a value inside the bounds")


def _check_values(p: str, where: str, key: str, prm: Any, base_cfg: Config) -> None:
    """Every value a parameter can take must fit its config key (type, allowed range)."""
    if isinstance(prm, CategoricalParam):
        candidates = list(prm.choices)
    else:
        candidates = [prm.low, prm.high]
    if "otherwise" in prm.model_fields_set:
        candidates.append(prm.otherwise)
    for v in candidates:
        try:
            base_cfg.override(key, v)
        except ConfigError as e:
            raise _fail(p, where, f"value {v!r} does not fit {key} ({e}); change the bounds or choices") from None


def _check_repeat(p: str, where: str, name: str, prm: RepeatBlock, space: Space, base_cfg: Config,
                  defined: dict[str, Any]) -> None:
    key = space.target(name, prm)
    if key is None:
        raise _fail(p, where, "a repeat block must set a list config key (name it model.meta_modules or give key:)")
    tp = _config_field(key)[1]
    item_tp = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
    if item_tp is None or not dataclasses.is_dataclass(item_tp):
        raise _fail(p, where, f"{key} is not a list of settings, so it cannot be repeated; use float, int or categorical")
    fields = {f.name for f in dataclasses.fields(item_tp)}
    scales = space.repeat_scales(name, prm)
    if prm.scales is not None:
        if not scales or any(b <= a for a, b in zip(scales, scales[1:])):
            raise _fail(p, f"{where}.scales", f"{scales} must be non-empty and grow from coarse to fine, e.g. [7, 14]")
    count = prm.count
    if isinstance(count, int):
        hi, lo = count, count
    elif isinstance(count, IntParam):
        lo, hi = count.low, count.high
    elif isinstance(count, CategoricalParam):
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in count.choices):
            raise _fail(p, f"{where}.count.choices", "must be whole numbers")
        lo, hi = min(count.choices), max(count.choices)
    else:
        raise _fail(p, f"{where}.count", "must be a whole number or an int/categorical distribution")
    if lo < 1:
        raise _fail(p, f"{where}.count", f"must be at least 1 (got {lo}); raise the lower bound")
    if hi > len(scales):
        raise _fail(p, f"{where}.count", f"can reach {hi}, but scales has only {len(scales)} entries {scales}; "
                                         f"list more scales (coarse to fine) or lower the count")
    if not isinstance(count, int):
        cname = f"{name}.count"
        if cname in defined:
            raise _fail(p, f"{where}.count", f"{cname} is defined twice; rename one of them")
        defined[cname] = count
    given = set(prm.each)
    unknown = given - fields
    if unknown:
        raise _fail(p, f"{where}.each.{sorted(unknown)[0]}", f"not a field of {key} items; known: {', '.join(sorted(fields))}")
    needed = fields - given - ({"scale"} if "scale" in fields else set())
    if needed:
        raise _fail(p, f"{where}.each", f"missing {', '.join(sorted(needed))}; give each a value or a distribution")
    if "scale" in given:
        raise _fail(p, f"{where}.each.scale", "scales come from the block's `scales:` list; remove it here")
    from matnet.data import dataset_info
    size = dataset_info(base_cfg.data.dataset)[1]
    for s in scales:
        if s < 0 or s > size or (s > 0 and size % s):
            raise _fail(p, f"{where}.scales", f"scale {s} must divide the image size {size} (0: fully connected)")
    local: dict[str, Any] = {}
    for field, spec in prm.each.items():
        fwhere = f"{where}.each.{field}"
        if isinstance(spec, _Param):
            _check_when(p, fwhere, spec.when, defined, local)
            for scale in scales:
                defined[f"{name}.{scale_tag(scale)}.{field}"] = spec
            cands = list(spec.choices) if isinstance(spec, CategoricalParam) else [spec.low, spec.high]
        else:
            cands = [spec]
        for v in cands:
            item = {f: 1 for f in fields}
            item[field] = v
            try:
                base_cfg.override(key, [item])
            except ConfigError as e:
                raise _fail(p, fwhere, f"value {v!r} does not fit ({e}); change it") from None
        local[field] = spec


def check_resume_compatible(saved: Space, new: Space) -> None:
    """A resumed search keeps its original space: the Optuna study holds its distributions, and a
    categorical whose choices change breaks it. Any change to what is searched is an error."""
    old_params, new_params = saved.param_names(), new.param_names()
    for name, prm in new_params.items():
        old = old_params.get(name)
        if old is None:
            continue
        where = f"search.{name}"
        if isinstance(prm, CategoricalParam) and isinstance(old, CategoricalParam) and prm.choices != old.choices:
            raise _fail(new.path, f"{where}.choices", f"changed from {old.choices} to {prm.choices} since the search "
                                                      f"started; Optuna cannot change a categorical's choices: restore "
                                                      f"them, or start a new search with --name")
        if prm.model_dump(exclude={"when", "otherwise", "key"}) != old.model_dump(exclude={"when", "otherwise", "key"}):
            raise _fail(new.path, where, "changed since the search started; restore it (the saved copy is "
                                         "space.yaml in the search directory) or start a new search with --name")
    for section in ("search", "scheduler", "sampler", "base", "data", "fixed", "points_to_evaluate"):
        if getattr(saved.spec, section) != getattr(new.spec, section):
            raise _fail(new.path, section, "differs from the search being resumed; restore it (see space.yaml in "
                                           "the search directory) or start a new search with --name")
