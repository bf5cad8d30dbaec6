"""Small configurations shared by the tests: real MNIST, narrow models, few steps."""
from __future__ import annotations

from matnet.config import Config, MetaModule
from matnet.presets import preset


def micro_config(tmp_path=None, **train) -> Config:
    """A 5-latent-layer conv MatNet on the first 2000 real MNIST training images."""
    cfg = preset("tiny")
    cfg.model.meta_modules = [MetaModule(7, 16, 2, 2), MetaModule(14, 16, 2, 2)]
    cfg.model.data_width = 8
    cfg.model.top_latents = 8
    cfg.data.train_limit = 2000
    cfg.data.eval_limit = 200
    cfg.train.device = "cpu"
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg
