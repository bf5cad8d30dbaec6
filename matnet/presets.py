"""Named configurations: the paper's models (widths from the author's code, see
../shared/reference/matnet-equations.md) and a small one that trains on a laptop CPU."""
from __future__ import annotations

from typing import Callable

from .config import Config, ConfigError

from .sections import DataConfig, MetaModule, ModelConfig, TrainConfig


def mnist_conv() -> Config:
    # FC top (32 latents), 5 TD modules at 7x7 and 5 at 14x14, 4 latent channels each, 64 channels at
    # 7x7 and 14x14, 32 at 28x28: 11 latent layers.
    return Config(
        model=ModelConfig(likelihood="bernoulli", top_latents=32,
                          meta_modules=[MetaModule(7, 64, 5, 4), MetaModule(14, 64, 5, 4)], data_width=32),
        data=DataConfig(dataset="mnist", binarize="dynamic"),
        train=TrainConfig(batch_size=100, lr=1e-3, betas=(0.8, 0.99), lr_halve_epochs=[100, 150, 200],
                          epochs=250, kl_warmup_steps=25 * 500),
    )


def omniglot_conv() -> Config:
    cfg = mnist_conv()
    cfg.data = DataConfig(dataset="omniglot", binarize="dynamic", val_size=1345)
    return cfg


def cifar10_conv() -> Config:
    # FC top (32 latents), 2 modules at 8x8, 4 at 16x16, 4 at 32x32, 6 latent channels each,
    # widths 192 / 144 / 96; discretized logistic likelihood on 8-bit pixels.
    return Config(
        model=ModelConfig(likelihood="logistic", top_latents=32,
                          meta_modules=[MetaModule(8, 192, 2, 6), MetaModule(16, 144, 4, 6),
                                        MetaModule(32, 96, 4, 6)], data_width=96),
        data=DataConfig(dataset="cifar10", binarize="none", val_size=5000),
        train=TrainConfig(batch_size=100, lr=5e-4, betas=(0.9, 0.99), lr_halve_epochs=[150, 250],
                          epochs=300, kl_warmup_steps=0),
    )


def cifar10_conv_gaussian() -> Config:
    # The paper's other CIFAR-10 model: a diagonal Gaussian on dequantised pixels (bits per dim are
    # then a bound on the discrete likelihood, see distributions.gaussian_dequantized_log_prob).
    cfg = cifar10_conv()
    cfg.model.likelihood = "gaussian"
    return cfg


def cifar10_conv_ar() -> Config:
    # The CIFAR-10 model with the local autoregressive head (section 2.3): five masked layers on the
    # discretized logistic; the head's width is not published, 64 channels here.
    cfg = cifar10_conv()
    cfg.model.ar_layers, cfg.model.ar_channels = 5, 64
    return cfg


def omniglot_conv_mixture() -> Config:
    # Figure 3: a 50-component mixture prior over z_0 and the posterior-entropy penalty 0.4 (both from
    # the author's code), to find class-like structure without labels.
    cfg = omniglot_conv()
    cfg.model.mixture_components, cfg.model.mixture_entropy_weight = 50, 0.4
    return cfg


def mnist_fc() -> Config:
    # The dynamic-MNIST model: fully connected, 7 GRU-style TD modules of 64 latents, 512 units. No
    # KL warm-up: under one, the KL's weight starts near 0 and Adam, which divides a gradient by its
    # own scale, still moves the priors' weights by about the rate at every step, unchecked by their
    # near-zero gradient; in this model the KL then overflows within tens of steps. Measured on the CPU
    # (2026-12-07, seeds 0-2): with the conv presets' 25-epoch warm-up, 5 of 6 runs of 30 steps skipped
    # 22 updates and 2 of 3 runs of 300 steps diverged, at rates down to 1e-4; without, none.
    return Config(
        model=ModelConfig(likelihood="bernoulli", top_latents=64,
                          meta_modules=[MetaModule(0, 512, 7, 64)], data_width=512),
        data=DataConfig(dataset="mnist", binarize="dynamic"),
        train=TrainConfig(batch_size=100, lr=1e-3, betas=(0.8, 0.99), lr_halve_epochs=[100, 150, 200],
                          epochs=250, kl_warmup_steps=0),
    )


def tiny() -> Config:
    # A small conv MatNet for CPUs: the MNIST layout, narrower and shallower (5 latent layers).
    return Config(
        model=ModelConfig(likelihood="bernoulli", top_latents=16,
                          meta_modules=[MetaModule(7, 32, 2, 4), MetaModule(14, 32, 2, 4)], data_width=16),
        data=DataConfig(dataset="mnist", binarize="dynamic", eval_limit=1000),
        train=TrainConfig(batch_size=100, lr=1e-3, betas=(0.9, 0.99), epochs=10, kl_warmup_steps=0),
    )


def mnist_quadrants() -> Config:
    # The paper's MNIST imputation task: a conditional MatNet (eqs. 3, 4, 6) of the MNIST conv layout
    # learns the unknown quadrants given 1-3 visible ones, chosen per example. Adam's beta1 0.9, not
    # the unconditional model's 0.8: a gradient spike moves a weight by up to (1 - beta1) / sqrt(1 -
    # beta2) times the rate, twice as far at 0.8, and with its two inference networks this model met
    # a non-finite update at 0.8 in a 60-step run (1 of 10 seeds; none of 7 at 0.9: docs/training.md).
    cfg = mnist_conv()
    cfg.data.task, cfg.data.mask, cfg.data.visible_quadrants = "impute", "quadrants", 0
    cfg.train.betas = (0.9, 0.99)
    return cfg


def faces_occluders() -> Config:
    # The paper's two-stage occluder model on 64x64 faces (CelebA; any folder via data.image_folder):
    # three 20x20 occluders; a single TD module at each of fully connected, 8x8, 16x16 and 32x32. The
    # widths and latent sizes are not published; these follow the CIFAR-10 model's proportions.
    return Config(
        model=ModelConfig(likelihood="logistic", top_latents=32,
                          meta_modules=[MetaModule(0, 256, 1, 32), MetaModule(8, 128, 1, 8),
                                        MetaModule(16, 96, 1, 8), MetaModule(32, 64, 1, 8)],
                          data_width=32, two_stage=True),
        data=DataConfig(dataset="image-folder", binarize="none", val_size=2000, task="impute",
                        mask="occluders", occluders=3, occluder_size=20),
        train=TrainConfig(batch_size=100, lr=5e-4, betas=(0.9, 0.99), lr_halve_epochs=[20, 30],
                          epochs=40, kl_warmup_steps=0),
    )


PRESETS: dict[str, Callable[[], Config]] = {
    "mnist-conv": mnist_conv,
    "omniglot-conv": omniglot_conv,
    "cifar10-conv": cifar10_conv,
    "cifar10-conv-gaussian": cifar10_conv_gaussian,
    "cifar10-conv-ar": cifar10_conv_ar,
    "omniglot-conv-mixture": omniglot_conv_mixture,
    "mnist-fc": mnist_fc,
    "tiny": tiny,
    "mnist-quadrants": mnist_quadrants,
    "faces-occluders": faces_occluders,
}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
