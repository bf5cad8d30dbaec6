"""Outputs checked before any computing (matnet/outputs.py) and written atomically; folders told apart
for what they are (matnet/folders.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from matnet import folders
from matnet.checkpoint import save_checkpoint
from matnet.config import ConfigError
from matnet.model import MatNet
from matnet.outputs import check_output, check_outputs, image_format, replacing, write_json
from matnet.plots import save_grid
from tests.helpers import micro_config


@pytest.fixture
def place(tmp_path):
    """A checkpoint, a run folder around one, a search folder, a file and an empty folder."""
    cfg = micro_config()
    save_checkpoint(tmp_path / "ckpt", MatNet(cfg.model, (1, 28, 28)), cfg, {"step": 1})
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint", MatNet(cfg.model, (1, 28, 28)), cfg, {"step": 1})
    cfg.to_json(run / "config.json")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "search.json").write_text("{}")
    (tmp_path / "search2").mkdir()
    (tmp_path / "search2" / "experiment_state-2024-01-01_00-00-00.json").write_text("{}")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    return tmp_path


def test_folders_are_told_apart(place):
    kinds = {name: folders.kind(place / name) for name in
             ("ckpt", "run", "run/checkpoint", "search", "search2", "file.txt", "empty", "other", "nowhere")}
    assert kinds == {"ckpt": "checkpoint", "run": "run", "run/checkpoint": "checkpoint", "search": "search",
                     "search2": "search", "file.txt": "file", "empty": "empty", "other": "other", "nowhere": "missing"}
    assert folders.enclosing_checkpoint(place / "run" / "checkpoint" / "a" / "b") == (place / "run" / "checkpoint").resolve()
    assert folders.enclosing_checkpoint(place / "run") is None
    # A checkpoint that lost one of its files is still recognised as one; a folder that holds only a
    # config.json or a meta.json (of another program) is not.
    (place / "ckpt" / "model.safetensors").unlink()
    assert folders.kind(place / "ckpt") == "checkpoint"
    (place / "ckpt" / "meta.json").unlink()
    assert folders.kind(place / "ckpt") == "other"
    (place / "other" / "meta.json").write_text("{}")
    assert folders.kind(place / "other") == "other" and check_output(place / "other" / "x.json", "--json")


# (path relative to the fixture's folder, image?, text the one-line error must hold)
REFUSED = [
    ("empty", False, "is a folder; give a file name"),
    ("empty/", False, "is a folder"),
    ("nowhere/", True, "is a folder"),
    ("", False, "empty path"),
    ("file.txt/out.json", False, "is a file, not a folder"),
    ("file.txt/deeper/still/out.json", False, "is a file, not a folder"),
    ("/proc/out.json", False, "cannot write in /proc"),
    ("/proc/nowhere/deeper/out.json", False, "cannot write in /proc"),
    ("grid", True, "no file extension"),
    ("grid.jpeg2", True, "'.jpeg2' is not an image format"),
    ("grid.json", True, "'.json' is not an image format"),
    ("grid.PNGX", True, "'.pngx' is not an image format"),
    ("grid.xbm", True, "XBM images cannot be written here"),
    ("ckpt/eval.json", False, "inside the checkpoint folder"),
    ("ckpt/meta.json", False, "inside the checkpoint folder"),
    ("run/checkpoint/grid.png", True, "inside the checkpoint folder"),
    ("run/checkpoint/new/deeper/eval.json", False, "inside the checkpoint folder"),
    ("run/config.json", False, "is the run's own config.json"),
    ("run/metrics.jsonl", False, "is the run's own metrics.jsonl"),
    ("run/kl_per_layer.png", True, "is the run's own kl_per_layer.png"),
]


@pytest.mark.parametrize("rel,image,expected", REFUSED, ids=[r[0] or "empty-string" for r in REFUSED])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(place, rel, image, expected):
    path = rel if rel.startswith("/") or rel == "" else str(place / rel) + ("/" if rel.endswith("/") else "")
    before = sorted(str(p) for p in place.rglob("*"))
    with pytest.raises(ConfigError) as e:
        check_output(path, "--out", image=image)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg and msg.startswith("--out"), msg
    assert sorted(str(p) for p in place.rglob("*")) == before  # the check wrote nothing, made no folder


ACCEPTED = [("new.json", False), ("a/b/c/new.json", False), ("file.txt", False), ("run/eval.json", False),
            ("run/samples.png", True), ("grid.PNG", True), ("grid.jpg", True), ("grid.jpeg", True),
            ("grid.webp", True), ("grid.tiff", True), ("grid.bmp", True), ("grid.gif", True), ("grid.pdf", True)]


@pytest.mark.parametrize("rel,image", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_outputs_that_can_be_written_pass_and_nothing_is_made_yet(place, rel, image):
    p = check_output(str(place / rel), "--json", image=image)
    assert p == place / rel
    assert not (place / "a").exists()  # folders are made when the file is written, not when checked


def test_devices_are_written_in_place(place):
    assert check_output("/dev/null", "--json") == Path("/dev/null")
    write_json("/dev/null", {"a": 1})
    assert Path("/dev/null").exists() and not Path("/dev/null").is_file()


def test_two_outputs_may_not_be_one_file(place):
    with pytest.raises(ConfigError, match="--json and --out name the same file"):
        check_outputs(("--out", str(place / "x.png"), True), ("--json", str(place / "." / "x.png"), False))
    check_outputs(("--out", str(place / "x.png"), True), ("--json", None, False))


def test_writes_are_atomic_and_make_their_folders(place):
    target = place / "deep" / "er" / "figures.json"
    write_json(target, {"nll": 1.0})
    assert json.loads(target.read_text()) == {"nll": 1.0}
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text('{"half')
            raise RuntimeError("killed while writing")
    assert json.loads(target.read_text()) == {"nll": 1.0}          # the old file, whole
    assert os.listdir(target.parent) == ["figures.json"]           # no temporary left behind
    # Through a symbolic link: its target is replaced, the link stays.
    (place / "link.json").symlink_to(target)
    write_json(place / "link.json", {"nll": 2.0})
    assert (place / "link.json").is_symlink() and json.loads(target.read_text()) == {"nll": 2.0}


def test_image_grids_are_written_in_the_format_their_name_says(place):
    from PIL import Image
    images = torch.rand(4, 1, 8, 8)
    for ext, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP"), (".tif", "TIFF")):
        path = save_grid(images, place / "grids" / f"g{ext}")
        assert Image.open(path).format == fmt
    assert image_format("x.JPEG") == "JPEG"
    with pytest.raises(ConfigError, match="not an image format"):
        save_grid(images, place / "g.jpeg2")
    assert not (place / "g.jpeg2").exists()


def test_running_out_of_memory_is_one_line_naming_what_to_lower(capsys):
    from matnet import cli

    def main(argv):
        import torch
        torch.empty(10 ** 14)  # 400 TB: the allocator refuses at once
    with pytest.raises(SystemExit) as e:
        cli.run(main, [], memory_hint="lower --n")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: out of memory") and "lower --n" in err[0]

    def bug(argv):
        raise RuntimeError("a bug, not the user's")
    with pytest.raises(RuntimeError, match="a bug"):  # anything else stays a traceback
        cli.run(bug, [])


def test_a_figure_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from matnet.plots import plot_kl_bars
    path = plot_kl_bars([1.0, 2.0], ["z0", "z1"], tmp_path / "kl.png", "before")
    before = path.read_bytes()

    def torn(self, fname, *args, **kw):
        Path(fname).write_bytes(b"\x89PNG half")  # a crash half way through the write
        raise OSError("disk full")
    monkeypatch.setattr(Figure, "savefig", torn)
    with pytest.raises(OSError, match="disk full"):
        plot_kl_bars([3.0, 4.0], ["z0", "z1"], tmp_path / "kl.png", "after")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["kl.png"]
