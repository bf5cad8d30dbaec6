"""The search-space file format: pydantic models of every section of a space YAML.

    experiment:   name, metric, mode, num_samples, max_concurrent, resources, max_failures, ...
    base:         the matnet preset every trial starts from (tiny, mnist-conv, cifar10-conv, ...)
    data:         the data set (keys of matnet.sections.DataConfig)
    fixed:        config keys set for every trial (nested sections or dotted keys)
    search:       the searched parameters, in order; each is an Optuna distribution
    strategy:     how configurations are drawn and which trials stop: a registered name (SAMPLER or
                  SAMPLER+SCHEDULER, e.g. random+asha, or pbt; search/tune/strategies/), or
                  {name: NAME, OPTION: VALUE, ...}; default: from sampler.type and scheduler.type
    scheduler:    the rung settings of asha and hyperband (type: a registered scheduler, for files
                  that name no strategy)
    sampler:      the sampler's seed and TPE's settings (type: a registered sampler, likewise)
    points_to_evaluate: trials to run first
    mlflow:       experiment name, tracking URI, sample images per trial
    tensorboard:  TensorBoard event files (off unless enabled), their folder, sample images per trial
    export:       IWAE evaluation of the best checkpoint (K, split, images)

A searched parameter is one of

    {type: float, low: 1e-4, high: 3e-3, log: true}       trial.suggest_float
    {type: int, low: 0, high: 2000, step: 500}             trial.suggest_int
    {type: categorical, choices: [16, 32, 64]}             trial.suggest_categorical
    {type: repeat, count: {...}, scales: [7, 14], each: {modules: {...}, width: ..., ...}}

each with an optional `when:` (conditions on earlier parameters, nodes.py) and `otherwise:`.
Only the shape of the file is checked here (keys, types, bounds of one distribution); what the
values mean for a matnet config is checked when the space is compiled (compile.py, checks.py).
"""
from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The comparisons a `when` condition may use: {param: {op: value}}.
CONDITION_OPS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScalarParam(_Strict):
    """What every one-value distribution (float, int, categorical) may carry besides its bounds."""
    # The config key this parameter sets; default: its name when the name is dotted, else none.
    key: Optional[str] = None
    # Draw this parameter only when these conditions on earlier parameters hold.
    when: Optional[dict[str, Any]] = None
    # The value the key takes when a condition does not hold (default: the fixed/base value).
    otherwise: Any = None
    # Population-based training may change it while a trial trains (strategy: pbt).
    mutable: bool = False


class FloatParam(ScalarParam):
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


class IntParam(ScalarParam):
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


class CategoricalParam(ScalarParam):
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
    # Checkpoints kept per trial: the best ones by `metric` (the latest is kept as well). With 1, Ray
    # Tune saves its whole state (every trial) after each checkpoint of each trial, so that a saved
    # state never names a deleted checkpoint: at hundreds of trials keep 2 (docs/benchmarks.md).
    keep_checkpoints: int = Field(2, ge=1)
    # Stop starting and running trials after this many seconds (0: no limit).
    time_budget_s: float = Field(0.0, ge=0)
    # Reuse trial worker processes between trials (saves process start-up and data loading).
    reuse_actors: bool = True


def _registered(kind: str, name: str) -> str:
    """A sampler.type or scheduler.type the strategy registry knows (search/tune/strategies/)."""
    from ..tune import strategies  # late: the registry's parts import this module's Space
    known = strategies.SAMPLERS if kind == "sampler" else strategies.SCHEDULERS
    if name not in known:
        raise ValueError(f"no {kind} {name!r}; use one of {', '.join(known)}")
    return name


class Scheduler(_Strict):
    # With sampler.type, for a file that names no strategy: the pair names it (strategies.pair_name).
    type: str = "asha"
    # Reports ("epochs": one per train.eval_every_steps, or per epoch) a trial makes before ASHA may stop it.
    # 2, not 1: the first report is noisy; on the table replay (docs/strategies.md) grace 1 with
    # reduction 3 returned worse configurations than 2 and 2 at every budget.
    grace_period: int = Field(2, ge=1)
    reduction_factor: float = Field(2.0, gt=1)
    # Reports a full trial makes; default: counted from the fixed training budget.
    max_t: Optional[int] = Field(None, ge=1)
    brackets: int = Field(1, ge=1)

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered("scheduler", v)


class Sampler(_Strict):
    type: str = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(10, ge=0)
    # TPE over the joint distribution, grouped by the parameters a trial has (suits conditional spaces).
    multivariate: bool = True
    group: bool = True
    # TPE's history bounded (search/tune/bounded_tpe.py): past history_best + history finished trials
    # it sees the history_best best and the `history` most recent ones, so a suggest does not grow with
    # the trials (0: every trial, Optuna's own TPE). 200: at about 300 and 1,000 trials the configuration
    # a search returned was as good as with the whole history (docs/strategies.md, docs/simulate-history.json).
    history: int = Field(200, ge=0)
    history_best: int = Field(25, ge=1)
    # Where the search's Optuna study is kept (search/store/study.py): a database URL without a password
    # (e.g. postgresql+psycopg://mlflow@postgres:5432/optuna) or a journal file's path. Default:
    # --optuna-storage, else OPTUNA_STORAGE, else optuna.journal in the search's folder.
    storage: Optional[str] = None

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered("sampler", v)


class Mlflow(_Strict):
    enabled: bool = True
    # MLflow experiment (default: experiment.name).
    experiment: Optional[str] = None
    # Default: --tracking-uri, else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory.
    tracking_uri: Optional[str] = None
    # Images in the sample grid logged for every finished trial (0: none).
    sample_images: int = Field(64, ge=0)
    # The registered model that every export's best checkpoint becomes a version of, with the alias
    # `champion` (models:/NAME@champion). Default: the MLflow experiment's name; "" registers nothing.
    registered_model: Optional[str] = None
    # Where a new MLflow experiment keeps its artifacts (default: the tracking server's choice; for a
    # sqlite:/// store, ./mlruns in the working folder).
    artifact_location: Optional[str] = None


class Tensorboard(_Strict):
    enabled: bool = False
    # Where the event files go (default: the search's folder, STORAGE/NAME/tensorboard; a local folder:
    # set it when --storage is a URI). `tensorboard --logdir` it; the HParams tab compares the trials.
    logdir: Optional[str] = None
    # Images in the sample grid written for every finished trial (0: none).
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
    # A registered strategy's name, or {name: NAME, ...its options}; None: sampler.type + scheduler.type.
    strategy: Union[str, dict[str, Any], None] = None
    base: str = "tiny"
    data: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    search: dict[str, Param]
    scheduler: Scheduler = Scheduler()
    sampler: Sampler = Sampler()
    points_to_evaluate: list[dict[str, Any]] = []
    mlflow: Mlflow = Mlflow()
    tensorboard: Tensorboard = Tensorboard()
    export: Export = Export()
