"""The figure painters of the tracking writer (search/tracking/painters.py): a finished trial's figures
drawn in other processes come back whole, in the order asked for, and a painter that dies or a
checkpoint that cannot be read costs a warning, never another trial's figures."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
from PIL import Image

from search.tracking.painters import Painters, draw, workers
from tests.helpers import tune_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tune_checkpoint(tmp_path_factory.mktemp("trial"))


def names(files):
    return sorted((Path(path).name, folder) for path, folder in files)


EXPECTED = [("kl_per_layer.json", "figures"), ("kl_per_layer.png", "figures"), ("kl_per_layer.png", "training"),
            ("metrics.jsonl", "training"), ("samples.png", "figures")]


def test_figures_drawn_by_painters_come_back_whole_in_order_and_their_folders_go(checkpoint):
    painters = Painters(2)
    got = []

    def done(tag):
        def ready(files, error):
            assert error is None
            got.append((tag, names(files), [Image.open(p).size for p, _ in files if p.endswith(".png")],
                        json.loads(Path(next(p for p, _ in files if p.endswith(".json"))).read_text())))
            assert all(Path(p).is_file() for p, _ in files)  # still there while `done` logs them
            folders.append(Path(files[0][0]).parent)
        return ready
    folders = []
    for i in range(3):
        painters.submit(done(i), checkpoint, 16, f"trial t{i}: val_elbo_nats 1{i}0.0", [1.0, 2.0, 3.0, 4.0, 0.5])
    painters.drain()
    assert [g[0] for g in got] == [0, 1, 2]  # the order asked for, whichever painter finished first
    for _, files, sizes, kl in got:
        assert files == EXPECTED
        assert all(w > 100 and h > 100 for w, h in sizes), sizes
        assert kl["kl_per_layer"] == [1.0, 2.0, 3.0, 4.0, 0.5] and len(kl["layers"]) == 5
    assert not any(f.exists() for f in folders)  # each trial's folder removed once logged
    # The same figures as drawn in the writer itself.
    inline = draw(checkpoint, str(folders[0].parent), 16, "t", [1.0, 2.0, 3.0, 4.0, 0.5])
    assert names(inline) == EXPECTED


def test_a_painter_that_dies_costs_one_warning_and_the_writer_draws_the_figures(checkpoint, caplog):
    painters = Painters(1)
    got = []
    painters.submit(lambda files, error: got.append((names(files), error)), checkpoint, 4, "a", None)
    for pid in list(painters._pool._processes):  # the painter killed while it draws
        os.kill(pid, signal.SIGKILL)
    painters.submit(lambda files, error: got.append((names(files), error)), checkpoint, 4, "b", None)
    with caplog.at_level(logging.WARNING):
        painters.drain()
    assert [error for _, error in got] == [None, None]
    assert all(files == EXPECTED for files, _ in got)  # the checkpoint's own KL (meta.json) drawn
    assert painters.workers == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "figure painters stopped" in warnings[0], warnings


def test_a_checkpoint_that_cannot_be_read_costs_only_its_own_figures(checkpoint, tmp_path):
    from ray import tune
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint.path, broken)
    (broken / "model.safetensors").write_bytes(b"not a model")
    painters = Painters(1)
    got = []
    for ckpt in (tune.Checkpoint.from_directory(str(broken)), checkpoint):
        painters.submit(lambda files, error: got.append((files, error)), ckpt, 4, "t", None)
    painters.drain()
    assert got[0][0] is None and got[0][1] is not None
    assert got[1][1] is None and names(got[1][0]) == EXPECTED


def test_the_number_of_painters(monkeypatch, caplog):
    monkeypatch.setenv("MATNET_FIGURE_WORKERS", "0")
    assert workers() == 0  # drawn in the writer itself
    monkeypatch.setenv("MATNET_FIGURE_WORKERS", "3")
    assert workers() == 3
    monkeypatch.setenv("MATNET_FIGURE_WORKERS", "many")
    with caplog.at_level(logging.WARNING):
        assert workers() == max(1, min(4, os.cpu_count() or 1))
    assert "MATNET_FIGURE_WORKERS='many'" in caplog.text
