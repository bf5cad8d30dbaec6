import json
import pickle

import pytest
import torch

from matnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from matnet.config import Config, ConfigError
from matnet.model import MatNet
from tests.helpers import micro_config


@pytest.fixture
def saved(tmp_path):
    cfg = micro_config()
    model = MatNet(cfg.model, (1, 28, 28))
    path = save_checkpoint(tmp_path / "ckpt", model, cfg, {"step": 7})
    return model, cfg, path


def test_round_trip_gives_identical_outputs(saved):
    model, cfg, path = saved
    loaded, cfg2, meta = load_checkpoint(path)
    assert cfg2 == cfg and meta["step"] == 7 and meta["image_shape"] == [1, 28, 28]
    assert {"torch", "python"} <= meta["versions"].keys()
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.2))
    model.eval()
    torch.manual_seed(3)
    a = model(x)
    torch.manual_seed(3)
    b = loaded(x)
    assert torch.equal(a.log_px, b.log_px) and torch.equal(a.kl_per_layer, b.kl_per_layer)


def one_line(e):
    assert "\n" not in str(e.value)
    return str(e.value)


def test_truncated_weights_are_a_clear_error(saved):
    _, _, path = saved
    w = path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt weights") as e:
        load_checkpoint(path)
    one_line(e)


def test_garbled_config_is_a_clear_error(saved):
    _, _, path = saved
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json") as e:
        load_checkpoint(path)
    one_line(e)


def test_incompatible_config_is_a_clear_error(saved):
    _, cfg, path = saved
    cfg.model.top_latents = 4
    cfg.to_json(path / "config.json")
    with pytest.raises(CheckpointError, match="do not fit") as e:
        load_checkpoint(path)
    one_line(e)


def test_unknown_config_key_in_a_checkpoint(saved):
    _, _, path = saved
    d = json.loads((path / "config.json").read_text())
    d["model"]["depth"] = 3
    (path / "config.json").write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match="unknown config key 'model.depth'"):
        load_checkpoint(path)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        load_checkpoint(tmp_path / "nothing")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_pickled_object_is_never_opened(saved, tmp_path, capsys):
    model, _, path = saved
    (path / "model.safetensors").unlink()
    state = dict(model.state_dict())
    state["evil"] = Evil()
    with open(path / "model.pt", "wb") as f:
        pickle.dump(state, f)
    with pytest.raises(CheckpointError, match="never unpickled") as e:
        load_checkpoint(path)
    one_line(e)
    assert "pwned" not in capsys.readouterr().out


def test_interrupted_save_keeps_the_previous_checkpoint(saved):
    model, cfg, path = saved
    # Simulate a crash between the two renames of a save: only the .old copy exists.
    path.rename(path.with_name(".ckpt.old"))
    loaded, _, meta = load_checkpoint(path)
    assert meta["step"] == 7


def test_config_rejects_unknown_keys_and_bad_types():
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'"):
        Config().override("train.epoch", 3)
    with pytest.raises(ConfigError, match="must be an integer"):
        Config().override("train.batch_size", "big")
    with pytest.raises(ConfigError, match="unknown config key 'model.meta_modules\\[0\\].depth'|unknown config key"):
        Config.from_dict({"model": {"meta_modules": [{"scale": 7, "width": 8, "modules": 1,
                                                      "latent_channels": 2, "depth": 1}]}})


def test_many_overrides_give_the_config_that_one_at_a_time_gives(monkeypatch):
    """with_overrides applies its keys in order to one copy and checks it once (a search builds a
    config from dozens of keys per trial): the same config as overriding one key after another."""
    from matnet import config as config_module
    from matnet.presets import preset
    overrides = {"train.lr": 3e-4, "model.top_latents": 8, "data.eval_limit": 20,
                 "model.meta_modules": [{"scale": 14, "width": 16, "modules": 2, "latent_channels": 4}]}
    one_at_a_time = preset("tiny")
    for key, value in overrides.items():
        one_at_a_time = one_at_a_time.override(key, value)
    builds = []
    original = config_module._build
    monkeypatch.setattr(config_module, "_build", lambda tp, v, where: (builds.append(where) if tp is Config else None)
                        or original(tp, v, where))
    together = preset("tiny").with_overrides(overrides)
    assert together == one_at_a_time and together.train.lr == 3e-4 and together.model.meta_modules[0].width == 16
    assert builds == [""]  # the whole config was built once
    # A whole section given as settings, then one of its keys: in order, as one at a time would.
    section = preset("tiny").train
    assert preset("tiny").with_overrides({"train": section, "train.lr": 1e-3}).train.lr == 1e-3
    assert preset("tiny").with_overrides({}) == preset("tiny")
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'"):
        preset("tiny").with_overrides({"train.lr": 1e-3, "train.epoch": 3})
    with pytest.raises(ConfigError, match="must be an integer"):
        preset("tiny").with_overrides({"train.lr": 1e-3, "train.batch_size": "big"})
