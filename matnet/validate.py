"""One validation of a config's values, made before anything is loaded, built or trained.

    validate(config)                  # matnet.train, and a search's dry run on every sampled trial config
    validate(config, training=False)  # matnet.evaluate on a checkpoint's config and its overrides
    problems(config)                  # every problem, not only the first (a dry run may list them all)

A config it accepts can start training: its types, ranges and combinations (likelihood and data
binarization, task and model, batch size and the size of the training split, the mask settings of an
imputation task, the device's name) are all checked here, each as a ConfigError that names the key,
the value and the fix. What it cannot know in advance is checked where the run starts, as one line too:
whether the data set's files are on the machine that trains (data.load_split) and whether the device it
names is there (device.resolve_device).

The checks that belong to one part stay in that part and are called from here, so that a rule has one
home: the model's layout (model.validate_layout), what a conditional MatNet lacks
(conditional.validate_conditional), the task (build.check_task), likelihood vs data
(distributions.check_data_fits), the batch size vs the training split (budget.budget), masks
(masks.mask_maker).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import torch

from .budget import budget
from .build import check_task
from .conditional import validate_conditional
from .config import Config, ConfigError
from .sections import DataConfig, ModelConfig, TrainConfig
from .data import dataset_info, dataset_names, source_problems
from .distributions import check_data_fits
from .masks import mask_maker
from .model import validate_layout

DEVICE_TYPES = ("cpu", "cuda", "mps")
_DEFAULTS = {"model": ModelConfig(), "data": DataConfig(), "train": TrainConfig()}


def validate(config: Config, *, training: bool = True, n_train: int | None = None) -> None:
    """Raise ConfigError for the first problem of `config` (saying how many more there are).

    training=False skips what only training uses (the train section and the size of the training
    split), for a checkpoint's config read back to evaluate, sample or impute. `n_train`: the number of
    training images when the caller knows it (default: counted from the data set's files without
    reading them, as budget.budget does)."""
    found = problems(config, training=training, n_train=n_train)
    if found:
        more = f" (and {len(found) - 1} more problem{'s' * (len(found) > 2)})" if len(found) > 1 else ""
        raise ConfigError(found[0] + more)


def problems(config: Config, *, training: bool = True, n_train: int | None = None) -> list[str]:
    """Every problem of `config`, each a one-line message naming the key and the fix."""
    try:  # types first: a Config built in Python (not from JSON) has not been through config._build
        Config.from_dict(config.to_dict())
    except ConfigError as e:
        return [str(e)]
    found = list(_non_finite(config.to_dict(), ""))
    data_problems = _data(config.data)
    found += _model(config.model) + data_problems
    if training:
        found += _train(config.train)
    if config.data.dataset not in dataset_names():
        return found
    # Combinations (each check raises on its own key, so a problem is not said twice), causes first: a
    # likelihood that does not fit the data, then what the data's image size makes of the layout.
    shape = dataset_info(config.data.dataset)
    found += _raised(check_task, config)
    found += _raised(check_data_fits, config.model.likelihood, config.data.binarize)
    found += _raised(validate_layout, config.model, shape)
    if config.data.task == "impute":
        found += _raised(validate_conditional, config.model)
        if training:  # a checkpoint's mask file may stay behind on another machine: its command says so
            found += _raised(mask_maker, config.data, shape)
        if config.train.inference_reg_weight > 0 and training:
            found.append("train.inference_reg_weight > 0 with data.task=impute: the inference regularizer is for "
                         "unconditional MatNets; set train.inference_reg_weight=0")
    if training and not data_problems and config.train.batch_size >= 1:
        found += _raised(budget, config, n_train)  # batch size vs training split, val_size vs the file
    return found


# ---------------------------------------------------------------------------------------------------
# The sections. Each rule: (key, value, test, what it must be); the fix names the default.

def _model(m: ModelConfig) -> list[str]:
    return _rules("model", m, [
        ("param_scale_init", lambda v: v > 0, "> 0 (a small positive scale keeps the initial KL small)"),
        ("leak", lambda v: 0 <= v < 1, "in [0, 1) (the negative slope of the leaky ReLU)"),
    ])  # widths, depths, latents, the extensions' settings: model.validate_layout, with the image shape


def _data(d: DataConfig) -> list[str]:
    return source_problems(d) + _rules("data", d, [
        ("val_size", lambda v: v >= 1, ">= 1 (the validation split every evaluation of a run scores)"),
        ("train_limit", lambda v: v >= 0, ">= 0 (0: all training images)"),
        ("eval_limit", lambda v: v >= 0, ">= 0 (0: the whole validation split)"),
    ])


def _train(t: TrainConfig) -> list[str]:
    found = _rules("train", t, [
        ("batch_size", lambda v: v >= 1, ">= 1"),
        ("lr", lambda v: v > 0, "> 0"),
        ("weight_decay", lambda v: v >= 0, ">= 0"),
        ("kl_warmup_steps", lambda v: v >= 0, ">= 0 (0: no warm-up)"),
        ("grad_clip", lambda v: v >= 0, ">= 0 (0: no clipping)"),
        ("epochs", lambda v: v >= 1, ">= 1"),
        ("max_steps", lambda v: v >= 0, ">= 0 (0: no step limit)"),
        ("max_minutes", lambda v: v >= 0, ">= 0 (0: no time limit)"),
        ("eval_every_steps", lambda v: v >= 0, ">= 0 (0: at the end of every epoch)"),
        ("seed", lambda v: 0 <= v < 2 ** 63, "between 0 and 2**63 - 1"),
        ("max_nonfinite_in_a_row", lambda v: v >= 1, ">= 1"),
        ("inference_reg_weight", lambda v: v >= 0, ">= 0 (0: off)"),
        ("lr_warmup_steps", lambda v: v >= -1, ">= 0 (0: no warm-up), or -1 for 2 / (1 - beta2) steps"),
        ("compile", lambda v: v.lower() in ("auto", "true", "false", "on", "off"), "auto, true or false"),
    ])
    for i, b in enumerate(t.betas):
        if not 0 <= b < 1:
            found.append(f"train.betas[{i}]={b!r}: must be in [0, 1) (Adam's moment decay rates); "
                         f"set train.betas to e.g. {list(_DEFAULTS['train'].betas)}, the default")
    for i, e in enumerate(t.lr_halve_epochs):
        if e < 0:
            found.append(f"train.lr_halve_epochs[{i}]={e}: must be >= 0 (epochs are counted from 0)")
    found += _device(t.device)
    return found


def _device(name: str) -> list[str]:
    """The device's name only: whether it is there is known where the run starts (resolve_device)."""
    if name == "auto":
        return []
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        return [f"train.device={name!r} is not a device; use auto, cpu, cuda or cuda:N"]
    return []


# ---------------------------------------------------------------------------------------------------

Rule = tuple[str, Callable[[Any], bool], str]


def _rules(section: str, part: Any, rules: list[Rule]) -> list[str]:
    found = []
    for name, ok, must in rules:
        value = getattr(part, name)
        if isinstance(value, float) and not math.isfinite(value):
            continue  # said once, by _non_finite
        if not ok(value):
            default = getattr(_DEFAULTS[section], name)
            found.append(f"{section}.{name}={value!r}: must be {must}; set it to e.g. {default!r}, the default")
    return found


def _non_finite(d: Any, where: str) -> Iterator[str]:
    """NaN and infinity parse as JSON numbers (`--set train.lr=NaN`) and pass every comparison test."""
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _non_finite(v, f"{where}.{k}" if where else k)
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            yield from _non_finite(v, f"{where}[{i}]")
    elif isinstance(d, float) and not math.isfinite(d):
        yield f"{where}={d!r}: must be a finite number"


def _raised(check: Callable[..., Any], *args: Any) -> list[str]:
    try:
        check(*args)
    except ConfigError as e:
        return [str(e)]
    return []

