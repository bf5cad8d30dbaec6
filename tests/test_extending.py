"""docs/layout.md's "Extending", checked: a data set is one module that registers itself (here added in a
temporary folder on the package's path, then trained on); a tracking back-end is the files and names
that section lists (each back-end has them). A strategy's part is checked in test_search_strategies.py."""
from __future__ import annotations

import sys

import pytest

from matnet import datasets

NEW_DATASET = '''
"""dots: 14x14 grey images of one bright dot each, from a .npy file of uint8 [N, 14, 14]."""
from pathlib import Path

import numpy as np
import torch

from matnet.datasets import Dataset, DatasetMissingError, Raw, register


def read(folder: Path) -> Raw:
    path = folder / "dots.npy"
    if not path.is_file():
        raise DatasetMissingError(f"dots: no {path}; write it with numpy.save")
    images = torch.from_numpy(np.load(path))[:, None]
    return Raw(images[:80], images[80:], str(path), str(path))


register(Dataset("dots", (1, 14, 14), read, how_to_get="numpy.save('dots.npy', images)"))
'''


def test_a_new_data_set_is_one_module_and_configs_train_on_it(tmp_path, monkeypatch):
    import numpy as np

    from matnet.config import ConfigError
    from matnet.presets import preset
    from matnet.sections import MetaModule
    from matnet.train import train
    from matnet.validate import validate as check_config
    folder = tmp_path / "more_datasets"
    folder.mkdir()
    (folder / "dots.py").write_text(NEW_DATASET)
    monkeypatch.setattr(datasets, "__path__", [*datasets.__path__, str(folder)])
    rng = np.random.default_rng(0)
    images = np.zeros((100, 14, 14), np.uint8)
    images[np.arange(100), rng.integers(0, 14, 100), rng.integers(0, 14, 100)] = 255
    np.save(tmp_path / "dots.npy", images)
    cfg = preset("tiny").with_overrides({
        "data.dataset": "dots", "data.data_dir": str(tmp_path), "data.val_size": 10, "data.eval_limit": 10,
        "model.meta_modules": [MetaModule(14, 8, 1, 2)], "model.data_width": 8, "model.top_latents": 4,
        "train.max_steps": 3, "train.batch_size": 10, "train.device": "cpu"})
    try:
        with pytest.raises(ConfigError, match="data.dataset"):
            check_config(cfg)  # not registered yet
        datasets._discover()
        assert datasets.names()[-1] == "dots"
        check_config(cfg)
        result = train(cfg, tmp_path / "run", progress=False)
        assert (tmp_path / "run" / "checkpoint" / "model.safetensors").is_file() and result is not None
    finally:
        datasets.REGISTRY.pop("dots", None)
        sys.modules.pop("matnet.datasets.dots", None)


def test_every_tracking_back_end_has_what_docs_layout_lists():
    """A tracker class (section, label, the static describe / check_resume / for_export / best_lines,
    and start, sink, log_best, log_summary, close, where), its section (with `enabled`) in the schema,
    a line in BACKENDS, and a sink class the tracking writer feeds (a TrialSink with the messages'
    methods)."""
    import importlib
    import pkgutil

    import search.tracking
    from search.space.schema import SpaceFile
    from search.tracking import BACKENDS
    from search.tracking.sinks import TrialSink
    for section, tracker in BACKENDS.items():
        assert tracker.section == section and tracker.label
        for name in ("describe", "check_resume", "for_export", "best_lines", "start", "sink", "log_best",
                     "log_summary", "close", "where"):
            assert callable(getattr(tracker, name, None)), f"{tracker.__name__} has no {name}"
        assert "enabled" in SpaceFile.model_fields[section].annotation.model_fields
    for module in pkgutil.iter_modules(search.tracking.__path__):
        importlib.import_module(f"search.tracking.{module.name}")
    sinks = TrialSink.__subclasses__()
    assert len(sinks) >= len(BACKENDS)
    for sink in sinks:
        assert all(callable(getattr(sink, m, None)) for m in ("start", "recover", "result", "exploit", "finish",
                                                              "end")), sink
