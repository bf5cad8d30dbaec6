"""One validation of a config's values (matnet/validate.py): a corpus of bad values and combinations,
each refused as one line naming the key; everything the shipped presets hold accepted; and what it
accepts can start training (the promise a search's dry run makes)."""
from __future__ import annotations

import pytest

from matnet.config import ConfigError

from matnet.sections import MetaModule
from matnet.presets import PRESETS, preset
from matnet.train import train
from matnet.validate import problems, validate
from tests.helpers import micro_config

INF, NAN = float("inf"), float("nan")

# (overrides on the tiny preset, text the message must hold). Each message must also name its key.
BAD = [
    ({"train.max_steps": -5}, "train.max_steps=-5: must be >= 0"),
    ({"train.lr": -0.5}, "train.lr=-0.5: must be > 0"),
    ({"train.lr": 0}, "train.lr=0.0: must be > 0"),
    ({"train.lr": NAN}, "train.lr=nan: must be a finite number"),
    ({"train.lr": INF}, "train.lr=inf: must be a finite number"),
    ({"train.batch_size": 0}, "train.batch_size=0: must be >= 1"),
    ({"train.batch_size": -100}, "train.batch_size=-100"),
    ({"train.batch_size": 60000}, "larger than the training split"),
    ({"data.train_limit": 50, "train.batch_size": 100}, "larger than the training split"),
    ({"train.epochs": 0}, "train.epochs=0: must be >= 1"),
    ({"train.max_minutes": -1}, "train.max_minutes=-1.0"),
    ({"train.eval_every_steps": -1}, "train.eval_every_steps=-1"),
    ({"train.kl_warmup_steps": -10}, "train.kl_warmup_steps=-10"),
    ({"train.grad_clip": -1}, "train.grad_clip=-1.0"),
    ({"train.weight_decay": -1e-5}, "train.weight_decay"),
    ({"train.betas": [0.9, 1.0]}, "train.betas[1]=1.0"),
    ({"train.betas": [-0.1, 0.99]}, "train.betas[0]=-0.1"),
    ({"train.lr_halve_epochs": [3, -1]}, "train.lr_halve_epochs[1]=-1"),
    ({"train.seed": -1}, "train.seed=-1"),
    ({"train.seed": 2 ** 64}, "train.seed="),
    ({"train.device": "gpu"}, "train.device='gpu' is not a device"),
    ({"train.device": "meta"}, "train.device='meta' is not a device"),
    ({"train.max_nonfinite_in_a_row": 0}, "train.max_nonfinite_in_a_row=0"),
    ({"train.inference_reg_weight": -0.1}, "train.inference_reg_weight=-0.1"),
    ({"train.inference_reg_weight": 0.5, "data.task": "impute"}, "inference regularizer is for unconditional"),
    ({"model.likelihood": "logistic"}, "model.likelihood='logistic' does not fit data.binarize='dynamic'"),
    ({"model.likelihood": "gaussian"}, "does not fit data.binarize"),
    ({"data.binarize": "none"}, "model.likelihood='bernoulli' does not fit data.binarize='none'"),
    ({"model.likelihood": "poisson"}, "model.likelihood='poisson'"),
    ({"model.leak": -0.1}, "model.leak=-0.1"),
    ({"model.leak": NAN}, "model.leak=nan"),
    ({"model.param_scale_init": 0}, "model.param_scale_init=0.0"),
    ({"model.top_latents": 0}, "model.top_latents"),
    ({"model.data_width": 0}, "model.data_width"),
    ({"model.mixture_components": -2}, "model.mixture_components"),
    ({"model.mixture_entropy_weight": -1}, "model.mixture_entropy_weight"),
    ({"model.ar_layers": -1}, "model.ar_layers=-1"),
    ({"model.ar_layers": 2, "model.ar_channels": 0}, "model.ar_channels=0"),
    ({"model.meta_modules": []}, "model.meta_modules is empty"),
    ({"model.meta_modules": [{"scale": 5, "width": 8, "modules": 1, "latent_channels": 2}]}, "must divide the image size"),
    ({"model.meta_modules": [{"scale": 7, "width": 0, "modules": 1, "latent_channels": 2}]}, "model.meta_modules[0]"),
    ({"model.two_stage": True}, "model.two_stage=true needs data.task=impute"),
    ({"model.mixture_components": 5, "data.task": "impute"}, "model.mixture_components > 0 with data.task=impute"),
    ({"model.ar_layers": 2, "data.task": "impute"}, "model.ar_layers > 0 with data.task=impute"),
    ({"data.task": "denoise"}, "data.task='denoise' is not known"),
    ({"data.dataset": "svhn"}, "data.dataset='svhn' is not known"),
    ({"data.binarize": "otsu"}, "data.binarize='otsu' is not known"),
    ({"data.val_size": -1}, "data.val_size=-1"),
    ({"data.val_size": 0}, "data.val_size=0: must be >= 1"),
    ({"data.val_size": 60000}, "leaves no training images"),
    ({"data.train_limit": -5}, "data.train_limit=-5"),
    ({"data.eval_limit": -5}, "data.eval_limit=-5"),
    ({"data.dataset": "image-folder", "data.binarize": "none", "model.likelihood": "logistic"}, "needs data.image_folder"),
    ({"data.task": "impute", "data.mask": "stripes"}, "not one of quadrants, occluders, centre"),
    ({"data.task": "impute", "data.visible_quadrants": 4}, "visible"),
    ({"data.task": "impute", "data.mask": "occluders", "data.occluder_size": 40}, "between 1 and the image size 28"),
    ({"data.task": "impute", "data.mask": "occluders", "data.occluders": 0}, "occluders"),
    ({"data.task": "impute", "data.mask": "centre", "data.centre_size": 29}, "centre square of side 29"),
]


def _bad_id(case):
    return ",".join(f"{k}={v}" for k, v in case[0].items())[:60]


@pytest.mark.parametrize("overrides,expected", BAD, ids=[_bad_id(c) for c in BAD])
def test_bad_values_are_refused_as_one_line_naming_the_key(overrides, expected):
    cfg = preset("tiny").with_overrides(overrides)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg, msg
    named = {k.split(".")[-1] for k in overrides}
    assert any(n in msg for n in named) or "image size" in msg or "visible" in msg, msg


def test_types_are_checked_also_for_configs_built_in_python():
    cfg = preset("tiny")
    cfg.train.lr = "fast"          # never went through config._build
    with pytest.raises(ConfigError, match="train.lr' must be a number"):
        validate(cfg)
    cfg = preset("tiny")
    cfg.model.meta_modules = [MetaModule(7, "wide", 2, 2)]
    with pytest.raises(ConfigError, match=r"meta_modules\[0\].width' must be an integer"):
        validate(cfg)


def test_every_problem_is_listed_and_the_count_is_said():
    cfg = preset("tiny").with_overrides({"train.lr": -1, "train.max_steps": -5, "model.likelihood": "logistic"})
    found = problems(cfg)
    assert len(found) == 3 and any("train.lr" in p for p in found) and any("likelihood" in p for p in found)
    with pytest.raises(ConfigError, match=r"\(and 2 more problems\)"):
        validate(cfg)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid(name, tmp_path):
    cfg = preset(name)
    if cfg.data.dataset == "image-folder":
        # faces-occluders names no folder on purpose (it must be given); with one it is valid.
        assert problems(cfg) == ["data.dataset=image-folder needs data.image_folder=PATH, the folder of "
                                 "photographs (e.g. CelebA's img_align_celeba)"]
        (tmp_path / "photos").mkdir()
        for i in range(30):
            (tmp_path / "photos" / f"{i}.png").write_bytes(b"")  # counted, not read
        cfg = cfg.with_overrides({"data.image_folder": str(tmp_path / "photos"), "data.val_size": 2,
                                  "train.batch_size": 10})
    assert problems(cfg) == []


def test_evaluation_checks_what_evaluation_uses():
    """A checkpoint's config read back for evaluation: its train section (and the training split's size)
    are not what evaluation uses, so they are not held against it; its model and data are."""
    cfg = preset("tiny").with_overrides({"train.lr": -1, "train.batch_size": 0})
    validate(cfg, training=False)
    with pytest.raises(ConfigError, match="does not fit"):
        validate(cfg.override("model.likelihood", "logistic"), training=False)
    with pytest.raises(ConfigError, match="data.dataset='nope'"):
        validate(cfg.override("data.dataset", "nope"), training=False)


# Unusual but valid: each must start training (one step) without any error. This is the promise a
# search's dry run relies on ("anything the dry run calls valid can start training").
UNUSUAL = [
    {"train.max_steps": 0, "train.epochs": 1, "data.train_limit": 20, "train.batch_size": 20},
    {"train.lr": 1e-9, "train.betas": [0.0, 0.0], "train.weight_decay": 0.0, "train.grad_clip": 0.0},
    {"train.batch_size": 1, "train.eval_every_steps": 1, "train.kl_warmup_steps": 1_000_000},
    {"train.seed": 2 ** 63 - 1, "train.lr_halve_epochs": [0, 0, 0]},
    {"model.leak": 0.0, "model.param_scale_init": 1e-6, "model.mixture_components": 3,
     "model.mixture_entropy_weight": 0.0, "train.inference_reg_weight": 0.5},
    {"data.binarize": "fixed", "data.val_size": 100, "data.eval_limit": 0},
    {"data.task": "impute", "data.mask": "centre", "data.centre_size": 28, "model.two_stage": True},
    {"data.task": "impute", "data.mask": "occluders", "data.occluders": 9, "data.occluder_size": 1},
    {"model.meta_modules": [{"scale": 0, "width": 8, "modules": 1, "latent_channels": 0}]},
]


@pytest.mark.parametrize("overrides", UNUSUAL, ids=[str(i) for i in range(len(UNUSUAL))])
def test_what_validation_accepts_can_start_training(overrides, tmp_path):
    cfg = micro_config().with_overrides({"train.max_steps": 1, "data.eval_limit": 20, **overrides})
    validate(cfg)
    m = train(cfg, tmp_path / "run", progress=False)
    assert m["step"] >= 1
