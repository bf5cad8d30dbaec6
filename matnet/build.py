"""The model a config asks for: an unconditional MatNet for data.task=generate; for data.task=impute a
conditional MatNet (or the two-stage one), which also records the mask maker of its data."""
from __future__ import annotations

from typing import Union

from .conditional import ConditionalMatNet
from .config import Config, ConfigError
from .masks import MaskError, mask_maker
from .model import MatNet
from .twostage import TwoStageMatNet

TASKS: tuple[str, ...] = ("generate", "impute")

AnyMatNet = Union[MatNet, ConditionalMatNet, TwoStageMatNet]


def check_task(config: Config) -> None:
    if config.data.task not in TASKS:
        raise ConfigError(f"data.task={config.data.task!r} is not known; choose one of: {', '.join(TASKS)}")
    if config.model.two_stage and config.data.task != "impute":
        raise ConfigError("model.two_stage=true needs data.task=impute (a two-stage model refines imputations)")


def is_conditional(model) -> bool:
    return bool(getattr(model, "conditional", False))


def build_model(config: Config, image_shape: tuple[int, int, int]) -> AnyMatNet:
    check_task(config)
    if config.data.task == "generate":
        return MatNet(config.model, image_shape)
    model = (TwoStageMatNet if config.model.two_stage else ConditionalMatNet)(config.model, image_shape)
    try:
        model.masks = mask_maker(config.data, image_shape)
    except MaskError:  # a mask file left behind on another machine: the model still loads (training checks)
        model.masks = None
    return model
