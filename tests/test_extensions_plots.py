"""Figure 4: per-layer KL over training, a stacked area plot grouped by meta module."""
import json

import pytest

from matnet.model import MatNet
from matnet.plots import plot_kl_per_layer, read_metrics
from matnet.presets import preset


def history(n_layers, steps=(100, 200, 300, 400)):
    return [{"step": s, "val_kl_per_layer": [0.5 + 0.1 * layer * (1 + k) for layer in range(n_layers)]}
            for k, s in enumerate(steps)]


def test_kl_plot_of_the_cifar_layout(tmp_path):
    model = MatNet(preset("cifar10-conv").model, (3, 32, 32))
    meta = model.layer_meta()
    assert meta == [-1, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert model.meta_labels() == {-1: "z0 (fc)", 0: "8x8", 1: "16x16", 2: "32x32"}
    path = plot_kl_per_layer(history(len(meta)), meta, tmp_path / "kl.png", model.meta_labels())
    from PIL import Image
    assert Image.open(path).size == (900, 504)


def test_kl_plot_edge_cases(tmp_path):
    meta = [-1, 0, 0, 1]
    # One evaluation: a single stacked bar; lines without val_kl_per_layer are skipped.
    plot_kl_per_layer([{"step": 5}] + history(4, steps=(10,)), meta, tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 0
    with pytest.raises(ValueError, match="layers"):
        plot_kl_per_layer(history(3), meta, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no metrics"):
        plot_kl_per_layer([], meta, tmp_path / "none.png")


def test_read_metrics(tmp_path):
    lines = history(2)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines) + "\n")
    assert read_metrics(tmp_path / "metrics.jsonl") == lines


def test_the_kl_charts_are_laid_out_tightly_and_drawn_once(tmp_path, monkeypatch):
    """A search draws these for every trial: one draw each (tight_layout's placeholder engine would
    make savefig draw the figure twice), and the same pixels as tight_layout followed by savefig."""
    from matplotlib.figure import Figure
    from PIL import Image, ImageChops

    from matnet.plots import plot_kl_bars
    names = ["z0"] + [f"z{i} (14x14)" for i in range(1, 9)]
    kl = [3.0 / (1 + i) for i in range(9)]
    plot_kl_bars(kl, names, tmp_path / "a.png", "trial t1: val_elbo_nats 120.3")
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: draws.append(1) or original(self, renderer))
    plot_kl_bars(kl, names, tmp_path / "b.png", "trial t1: val_elbo_nats 120.3")
    plot_kl_per_layer(history(4), [-1, 0, 0, 1], tmp_path / "c.png")
    assert len(draws) == 2
    set_engine = Figure.set_layout_engine  # tight_layout's placeholder engine left in place, as before:
    monkeypatch.setattr(Figure, "set_layout_engine",
                        lambda self, layout=None, **k: None if layout is None else set_engine(self, layout, **k))
    plot_kl_bars(kl, names, tmp_path / "d.png", "trial t1: val_elbo_nats 120.3")
    assert len(draws) == 4  # drawn twice that way
    a, d = Image.open(tmp_path / "b.png").convert("RGB"), Image.open(tmp_path / "d.png").convert("RGB")
    assert a.size == d.size and ImageChops.difference(a, d).getbbox() is None
