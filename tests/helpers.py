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


def resolver_env(tmp_path) -> dict[str, str]:
    """The environment under which a subprocess finds matnet's checkpoint resolvers as pyproject.toml
    declares them (matnet/locate.py looks them up as entry points). An install of this checkout
    (scripts/setup.sh) has them; an older install made from another checkout may not, and then a
    distribution holding just these entry points is put on PYTHONPATH."""
    import os
    import tomllib
    from importlib.metadata import entry_points
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    group = "matnet.checkpoint_resolvers"
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"][group]
    installed = {ep.name: ep.value for ep in entry_points(group=group)}
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    if any(installed.get(name) != value for name, value in declared.items()):
        dist = Path(tmp_path) / "resolvers" / "matnet_search_resolvers-0.dist-info"
        dist.mkdir(parents=True, exist_ok=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: matnet-search-resolvers\nVersion: 0\n")
        (dist / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in declared.items()))
        paths.insert(1, str(dist.parent))
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
