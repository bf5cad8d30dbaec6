"""Configuration: the model layout, the data and the training settings, as plain dataclasses.

A config is data: it is written to `config.json` beside every checkpoint, read back to rebuild the
model, and overridden key by key from the command line (`--set train.lr=5e-4`) or from a search
space. Unknown keys are errors, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .userfiles import read_json


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the fix."""


@dataclass
class MetaModule:
    """A group of modules that share one spatial scale (section 2.2, "meta modules").

    scale: side of the feature maps (7 for 7x7); 0 means fully connected.
    width: channels (or hidden units when fully connected) of the TD, BU and merge states.
    modules: number of TD modules, hence latent layers, at this scale.
    latent_channels: channels (or units) of each latent layer z_i at this scale.
    """

    scale: int
    width: int
    modules: int
    latent_channels: int


@dataclass
class ModelConfig:
    # Likelihood p(x|z): "bernoulli" (binary images), "gaussian" (dequantised 8-bit),
    # "logistic" (discretized logistic of Kingma et al., 8-bit).
    likelihood: str = "bernoulli"
    # z_0: the fully-connected top latent layer, prior N(0, I).
    top_latents: int = 32
    # Meta modules from the coarsest scale to the finest.
    meta_modules: list[MetaModule] = field(
        default_factory=lambda: [MetaModule(7, 64, 5, 4), MetaModule(14, 64, 5, 4)]
    )
    # Channels of the plain convolutions that feed data into the BU network and out of the TD network.
    data_width: int = 32
    # Trainable scale, initialised to this value, that multiplies every Gaussian mean and
    # log-variance (a fact from the author's code): keeps the initial KL small.
    param_scale_init: float = 0.2
    leak: float = 0.1  # negative slope of lrelu
    # --- extensions (section 2.3); each is off at its default, so older configs load unchanged ---
    # Gaussian mixture prior over z_0 with this many trainable components (0: the plain N(0, I)).
    mixture_components: int = 0
    # Train the mixture weights (as logits) instead of keeping them uniform 1/K as the paper does.
    mixture_learn_weights: bool = False
    # Weight of the penalty on the entropy of each input's posterior over the mixture components
    # (the paper's "slight penalty" that sharpens the clusters; the author's Omniglot run used 0.4).
    mixture_entropy_weight: float = 0.0
    # Local autoregressive head on p(x|z): a PixelCNN with this many masked layers (0: no head) ...
    ar_layers: int = 0
    # ... of this many channels each.
    ar_channels: int = 64
    # With data.task = impute: a second conditional MatNet of the same layout refines the first one's
    # imputation (the paper's two-stage occluder models; twostage.py).
    two_stage: bool = False


@dataclass
class DataConfig:
    # mnist | fashion-mnist | omniglot | cifar10 | image-folder (data.image_folder, 64x64 RGB)
    dataset: str = "mnist"
    # dynamic: resample a binarization every time an image is drawn; fixed: the standard fixed
    # binarization when its files are present (else a seeded stand-in, labelled as such);
    # none: keep 8-bit intensities (for gaussian / logistic likelihoods).
    binarize: str = "dynamic"
    data_dir: str = "data"
    # Images taken from the end of the training split to form the validation split.
    val_size: int = 10000
    # Use only the first N training images (0: all); for quick runs and tests.
    train_limit: int = 0
    # Validation images evaluated at each epoch end (0: all of the validation split).
    eval_limit: int = 2000
    # --- imputation (each setting is unused at its default task, so older configs load unchanged) ---
    # generate: model p(x) (an unconditional MatNet); impute: model p(x_u | x_k), the unknown pixels
    # given the known ones (a conditional MatNet, eqs. 3, 4, 6), under masks drawn as below.
    task: str = "generate"
    # Which pixels are unknown: quadrants | occluders | centre | the path of a mask image (white =
    # unknown). See matnet/masks.py.
    mask: str = "quadrants"
    # quadrants: how many of the four are visible (0: 1, 2 or 3, drawn per example, as the paper).
    visible_quadrants: int = 0
    # occluders: how many squares, and their side in pixels (the paper's faces: three of 20x20).
    occluders: int = 3
    occluder_size: int = 20
    # centre: the side of the hidden square (0: half the image side).
    centre_size: int = 0
    # dataset image-folder: the folder of photographs (CelebA, LSUN, ...), read at 64x64.
    image_folder: str = ""


@dataclass
class TrainConfig:
    batch_size: int = 100
    lr: float = 1e-3
    # Learning-rate warm-up: the rate rises linearly from lr / N to lr over the first N steps (0: none;
    # -1: N = 2 / (1 - beta2), 200 steps for beta2 = 0.99, but at most a tenth of the step budget and
    # never under 10 steps: schedule.warmup_steps). Adam's first updates rest on a second-moment
    # estimate of one or two gradients, so each weight moves by about +-lr whatever its gradient; in the
    # MatNet's unnormalised residual stacks (eqs. 7, 9, 10) those moves compound into exploding states
    # and KL spikes (docs/training.md). Configs written before this key run without.
    lr_warmup_steps: int = -1
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 1e-5  # L2, as the author's code
    # Epochs (counted from 0) at which the learning rate is halved.
    lr_halve_epochs: list[int] = field(default_factory=list)
    # KL warm-up: the KL weight rises linearly from 0 to 1 over this many steps (0: no warm-up).
    kl_warmup_steps: int = 0
    grad_clip: float = 100.0  # global gradient-norm clip (0: none)
    epochs: int = 100
    max_steps: int = 0  # 0: no step limit
    max_minutes: float = 0.0  # 0: no time limit
    # Evaluate, report and checkpoint every N steps (0: at the end of every epoch).
    eval_every_steps: int = 0
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    # bf16 autocast on CUDA (ignored on CPU). Off by default: a MatNet step at the paper's sizes is
    # bound by kernel launches, not arithmetic, and bf16's casts add kernels (measured no faster on an
    # H100/H200); CUDA runs fp32 with TF32 matrix products instead. Configs written before this change
    # said true, and keep it.
    amp: bool = False
    # torch.compile the training step: "auto" (on for CUDA, with CUDA graphs; off on the CPU, where
    # compiling costs minutes and was not measured faster), "true" or "false".
    compile: str = "auto"
    # Stop with an error after this many consecutive non-finite updates (each is skipped).
    max_nonfinite_in_a_row: int = 50
    # Weight lambda of the inference regularizer (eq. 13): the free energy of samples drawn from the
    # model, maximised over the inference network only (0: off). Costs a draw from the model and one
    # more forward pass per step; with the autoregressive head the draw is pixel by pixel (slow).
    inference_reg_weight: float = 0.0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path) -> None:
        # Written beside and renamed over: an interrupted write leaves the old file, not half a config.
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        return _build(cls, d, "")

    @classmethod
    def from_json(cls, path: str | Path, fix: str = "fix the file or re-create it") -> "Config":
        """A config file; every way it can be unusable (missing, a folder, not UTF-8, not JSON, not a
        mapping, unknown keys, wrong types) is a ConfigError that names the file."""
        d = read_json(path, ConfigError, fix)
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def override(self, key: str, value: Any) -> "Config":
        """A copy with one dotted key (`train.lr`, `model.meta_modules`) replaced."""
        return self.with_overrides({key: value})

    def with_overrides(self, overrides: dict[str, Any]) -> "Config":
        """A copy with dotted keys replaced, in order, and checked once: a search builds a config from
        dozens of them per trial, and rebuilding the whole config per key was a tenth of the driver's time."""
        if not overrides:
            return self
        d = self.to_dict()
        for key, value in overrides.items():
            key_type(key)  # an unknown key is an error that lists the known ones
            *sections, name = key.split(".")
            node = d
            for part in sections:  # a section an earlier key set whole may be a dataclass: back to settings
                node[part] = dataclasses.asdict(node[part]) if dataclasses.is_dataclass(node[part]) else node[part]
                node = node[part]
            node[name] = value
        return Config.from_dict(d)


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))


@functools.cache
def _hints(tp: type) -> dict[str, Any]:
    """A settings dataclass's field types, resolved once (typing re-resolves them at every call)."""
    return typing.get_type_hints(tp)


def key_type(key: str) -> Any:
    """The declared type of a dotted config key (`train.lr` -> float, `model.meta_modules` ->
    list[MetaModule]). An unknown key raises ConfigError listing the keys known where it went wrong."""
    tp: Any = Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(tp)]
        if part not in names:
            prefix = ".".join(parts[:i])
            known = ", ".join(f"{prefix}.{n}" if prefix else n for n in names)
            raise ConfigError(f"unknown config key '{key}'; known keys: {known}")
        tp = _hints(tp)[part]
        if i < len(parts) - 1 and not dataclasses.is_dataclass(tp):
            raise ConfigError(f"unknown config key '{key}': '{'.'.join(parts[:i + 1])}' is a setting, not a section")
    return tp


def item_fields(key: str) -> list[str] | None:
    """The fields of each item when `key` holds a list of settings (model.meta_modules: scale, width,
    modules, latent_channels), else None."""
    tp = key_type(key)
    if typing.get_origin(tp) is not list or not dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return None
    return [f.name for f in dataclasses.fields(typing.get_args(tp)[0])]


def parse_set(items: list[str]) -> dict[str, Any]:
    """`key=value` strings from the command line; values are read as JSON where they parse
    (numbers, lists, true/false), else kept as strings."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, for example --set train.lr=5e-4")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError as e:
            if v.strip()[:1] in "[{\"":  # meant as JSON (a list, a mapping, a quoted string): say where it breaks
                raise ConfigError(f"--set {k.strip()}: {v!r} is not valid JSON ({e.msg} at character {e.pos + 1}); "
                                  f"fix it there (JSON wants double-quoted names and no trailing comma)") from None
            out[k.strip()] = v
    return out


def _build(tp: Any, value: Any, where: str) -> Any:
    """Rebuild a (nested) dataclass from plain data, checking keys and types on the way."""
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{where or '<root>'}' must be a mapping, got {value!r}")
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            prefix = f"{where}." if where else ""
            raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'; known keys: "
                              f"{', '.join(prefix + n for n in sorted(names))}")
        kwargs = {k: _build(hints[k], v, f"{where}.{k}" if where else k) for k, v in value.items()}
        try:
            return tp(**kwargs)
        except TypeError as e:  # a required field is missing
            raise ConfigError(f"config key '{where or '<root>'}': {e}") from None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{where}' must be a list, got {value!r}")
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key '{where}' must be a list of {len(args)} values, got {value!r}")
        return tuple(_build(a, v, where) for a, v in zip(args, value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{where}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"config key '{where}' must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{where}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool):  # --set train.compile=false parses as JSON false
            return "true" if value else "false"
        if not isinstance(value, str):
            raise ConfigError(f"config key '{where}' must be a string, got {value!r}")
        return value
    return value
