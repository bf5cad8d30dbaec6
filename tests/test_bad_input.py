"""A corpus of bad input across every matnet command: each gets one line `error: ...` naming what is
wrong and the fix, exit status 2, no traceback, and leaves every file already written as it was
(checksums of the run, its checkpoint and the other fixtures before and after).

The bulk runs each command's main() in-process (fast); a representative subset runs as a user would,
`python -m matnet.X ...` in a subprocess."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from matnet import cli
from matnet.train import train
from tests.helpers import micro_config


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A trained run (and so its checkpoint), a conditional checkpoint, a search folder, spoiled copies
    of the checkpoint, and files that are wrong in every way a user's file can be."""
    root = tmp_path_factory.mktemp("place")
    cfg = micro_config(max_steps=2).with_overrides({"data.eval_limit": 20})
    train(cfg, root / "run", progress=False)
    train(cfg.override("data.task", "impute"), root / "cond", progress=False)
    (root / "search").mkdir()
    (root / "search" / "search.json").write_text("{}")
    (root / "empty").mkdir()
    (root / "file.txt").write_text("a file")
    (root / "notutf8.json").write_bytes(b'{"model": "\xff\xfe"}')
    (root / "list.json").write_text("[1, 2, 3]")
    (root / "trunc.json").write_text('{"model": {"likelihood": ')
    (root / "deep.json").write_text("[" * 100000)
    (root / "nan.json").write_text(json.dumps({"train": {"lr": float("nan")}}))
    Image.new("L", (30, 28), 255).save(root / "mask30x28.png")
    Image.new("L", (14, 14), 255).save(root / "mask14.png")
    (root / "notimage.png").write_bytes(b"not an image")
    (root / "betas1.json").write_text('{"train": {"betas": [0.9]}}')
    ckpt = root / "run" / "checkpoint"
    (root / "link_meta.json").symlink_to(ckpt / "meta.json")
    (root / "link_ckpt").symlink_to(ckpt)
    spoil = {
        "meta_list": lambda c: (c / "meta.json").write_text("[1, 2]"),
        "meta_notutf8": lambda c: (c / "meta.json").write_bytes(b"\xff\xfe{}"),
        "meta_shape": lambda c: (c / "meta.json").write_text(json.dumps({"image_shape": "abc", "step": 2})),
        "meta_step": lambda c: (c / "meta.json").write_text(json.dumps({"image_shape": [1, 28, 28], "step": "2"})),
        "meta_folder": lambda c: ((c / "meta.json").unlink(), (c / "meta.json").mkdir()),
        "config_folder": lambda c: ((c / "config.json").unlink(), (c / "config.json").mkdir()),
        "config_list": lambda c: (c / "config.json").write_text("[]"),
        "config_notutf8": lambda c: (c / "config.json").write_bytes(b"\x80\x81"),
        "config_values": lambda c: (c / "config.json").write_text(
            json.dumps({**json.loads((ckpt / "config.json").read_text()),
                        "model": {**json.loads((ckpt / "config.json").read_text())["model"], "likelihood": "logistic"}})),
        "weights_truncated": lambda c: (c / "model.safetensors").write_bytes((c / "model.safetensors").read_bytes()[:500]),
    }
    for name, fn in spoil.items():
        shutil.copytree(ckpt, root / name)
        fn(root / name)
    return root


def run_main(module: str, args: list[str]) -> int:
    """python -m matnet.MODULE ARGS in-process: its exit status (stderr is left to capsys)."""
    main = __import__(f"matnet.{module}", fromlist=["main"]).main
    with pytest.raises(SystemExit) as e:
        cli.run(main, args)
    return e.value.code


# (command, arguments with {root} for the fixture folder, text the one line must hold)
CORPUS = [
    # --- matnet.train: values ---------------------------------------------------------------------
    ("train", "--preset tiny --out {root}/new --max-steps -5", "train.max_steps=-5: must be >= 0"),
    ("train", "--preset tiny --out {root}/new --set train.lr=-0.5", "train.lr=-0.5: must be > 0"),
    ("train", "--preset tiny --out {root}/new --set train.lr=NaN", "train.lr=nan: must be a finite number"),
    ("train", "--preset tiny --out {root}/new --set train.batch_size=0", "train.batch_size=0"),
    ("train", "--preset tiny --out {root}/new --set train.batch_size=1000000", "larger than the training split"),
    ("train", "--preset tiny --out {root}/new --set model.likelihood=logistic", "does not fit data.binarize"),
    ("train", "--preset tiny --out {root}/new --set data.binarize=none", "does not fit data.binarize='none'"),
    ("train", "--preset tiny --out {root}/new --set train.device=gpu", "train.device='gpu' is not a device"),
    ("train", "--preset tiny --out {root}/new --device tpu:0", "is not a device"),
    ("train", "--preset tiny --out {root}/new --seed -1", "train.seed=-1"),
    ("train", "--preset tiny --out {root}/new --max-minutes -1", "train.max_minutes=-1.0"),
    ("train", "--preset tiny --out {root}/new --set train.lr=fast", "train.lr' must be a number"),
    ("train", "--preset tiny --out {root}/new --set train.lr", "expected key=value"),
    ("train", "--preset tiny --out {root}/new --set train.betas=[0.9,", "train.betas: '[0.9,' is not valid JSON"),
    # several problems: the cause (a likelihood for binary pixels on 8-bit ones) before its consequence
    ("train", "--preset tiny --out {root}/new --set data.dataset=cifar10 --set data.binarize=none",
     "model.likelihood='bernoulli' does not fit data.binarize='none'"),
    ("train", "--preset tiny --out {root}/new --set data.task=impute --set data.mask={root}/mask30x28.png",
     "30x28 pixels, but the images are 28x28"),
    ("train", "--preset tiny --out {root}/new --max-steps many", "argument --max-steps: invalid int value"),
    ("train", "--preset tiny", "the following arguments are required: --out"),
    ("train", "--preset tiny --config {root}/list.json --out {root}/new", "give exactly one of --preset"),
    ("train", "--preset tiny --out {root}/new --set train.max_minutes=1e400", "train.max_minutes=inf"),
    ("train", "--preset tiny --out {root}/new --set train.seed=1.5", "train.seed' must be an integer"),
    ("train", "--preset tiny --out {root}/new --set model.meta_modules=[]", "model.meta_modules is empty"),
    ("train", "--preset tiny --out {root}/new --device cuda:abc", "is not a device"),
    ("train", "--preset tiny --out {root}/new --device cuda", "no CUDA GPU is visible"),
    ("train", "--preset faces-occluders --out {root}/new --set data.image_folder={root}/nowhere", "no such folder"),
    ("train", "--preset faces-occluders --out {root}/new", "needs data.image_folder"),
    # a data folder with a typo is named, not replaced by the packaged MNIST
    ("train", "--preset tiny --out {root}/new --data-dir {root}/dataa", "data.data_dir={root}/dataa: no such folder"),
    ("evaluate", "{root}/run/checkpoint --data-dir {root}/dataa", "data.data_dir={root}/dataa: no such folder"),
    # --- matnet.train: config files ---------------------------------------------------------------
    ("train", "--config {root}/notutf8.json --out {root}/new", "notutf8.json: not UTF-8 text"),
    ("train", "--config {root}/list.json --out {root}/new", "list.json: holds a list where a mapping"),
    ("train", "--config {root}/trunc.json --out {root}/new", "trunc.json: not valid JSON"),
    ("train", "--config {root}/deep.json --out {root}/new", "deep.json: "),
    ("train", "--config {root}/nan.json --out {root}/new", "train.lr=nan"),
    ("train", "--config {root}/missing.json --out {root}/new", "missing.json: no such file"),
    ("train", "--config {root}/empty --out {root}/new", "empty: is a folder, not a file"),
    ("train", "--config {root}/run/checkpoint/meta.json --out {root}/new", "unknown config key"),
    ("train", "--config {root}/betas1.json --out {root}/new", "train.betas' must be a list of 2 values"),
    ("train", "--config /dev/zero --out {root}/new", "larger than 64 MiB"),
    # --- matnet.train: --out ----------------------------------------------------------------------
    ("train", "--preset tiny --out {root}/run/checkpoint", "is a checkpoint folder"),
    ("train", "--config {root}/run/config.json --out {root}/run/checkpoint", "is a checkpoint folder"),
    ("train", "--config {root}/run/config.json --out {root}/run/checkpoint/checkpoint", "inside the checkpoint"),
    ("train", "--config {root}/run/config.json --out {root}/cond/checkpoint", "is a checkpoint folder"),
    ("train", "--preset tiny --out {root}/run/metrics.jsonl", "is a file"),
    ("train", "--preset tiny --out {root}/file.txt/run", "is a file, not a folder"),
    ("train", "--preset tiny --out {root}/search", "is a search folder"),
    ("train", "--preset tiny --out /proc/run", "cannot write in /proc"),
    ("train", "--preset tiny --out {root}/run --set model.top_latents=4", "another model"),
    ("train", "--preset tiny --out {root}/link_ckpt", "is a checkpoint folder"),
    ("train", "--preset tiny --out {root}/cond", "another model"),
    # --- matnet.evaluate ----------------------------------------------------------------------------
    ("evaluate", "{root}/run --samples 2", "is a training run folder, not a checkpoint; its checkpoint is"),
    ("evaluate", "{root}/search --samples 2", "is a search folder, not a checkpoint; its best checkpoint is"),
    ("evaluate", "{root}/file.txt", "is a file, not a checkpoint folder"),
    ("evaluate", "{root}/nowhere", "no checkpoint directory there"),
    # 0 means "sized automatically" (from free memory on a GPU); below it is a mistake.
    ("evaluate", "{root}/run/checkpoint --batch-size -1", "argument --batch-size: must be an integer >= 0"),
    ("evaluate", "{root}/run/checkpoint --rows -1", "argument --rows: must be an integer >= 0"),
    ("evaluate", "{root}/run/checkpoint --samples 0", "argument --samples: must be an integer >= 1"),
    ("sample", "{root}/run/checkpoint --n 100000000", "argument --n: must be an integer from 1 to 10,000"),
    ("evaluate", "{root}/run/checkpoint --limit -1", "argument --limit: must be an integer >= 0"),
    ("evaluate", "{root}/run/checkpoint --split holdout", "argument --split: invalid choice"),
    ("evaluate", "{root}/run/checkpoint --device banana", "is not a device"),
    ("evaluate", "{root}/run/checkpoint --json {root}/empty", "--json {root}/empty: is a folder"),
    ("evaluate", "{root}/run/checkpoint --json {root}/file.txt/e.json", "is a file, not a folder"),
    ("evaluate", "{root}/run/checkpoint --json /proc/e.json", "cannot write in /proc"),
    ("evaluate", "{root}/run/checkpoint --json {root}/run/checkpoint/meta.json", "inside the checkpoint folder"),
    ("evaluate", "{root}/run/checkpoint --json {root}/run/config.json", "is the run's own config.json"),
    ("evaluate", "{root}/meta_list", "meta.json: holds a list where a mapping"),
    ("evaluate", "{root}/meta_list --json=", "--json: an empty path"),
    ("evaluate", "{root}/meta_notutf8", "meta.json: not UTF-8 text"),
    ("evaluate", "{root}/meta_shape", "image_shape 'abc' is not [channels, height, width]"),
    ("evaluate", "{root}/meta_step", "'step' must be an integer"),
    ("evaluate", "{root}/meta_folder", "meta.json: is a folder, not a file"),
    ("evaluate", "{root}/config_folder", "config.json: is a folder, not a file"),
    ("evaluate", "{root}/config_list", "config.json: holds a list"),
    ("evaluate", "{root}/config_notutf8", "config.json: not UTF-8 text"),
    ("evaluate", "{root}/weights_truncated", "corrupt weights file"),
    ("evaluate", "{root}/config_values", "do not fit the model in config.json"),
    ("evaluate", "{root}/run/checkpoint --device cuda:0", "no CUDA GPU is visible"),
    ("evaluate", "{root}/run/checkpoint --json {root}/link_meta.json", "inside the checkpoint folder"),
    ("evaluate", "{root}/run/checkpoint --json {root}/empty/../run/checkpoint/e.json", "inside the checkpoint folder"),
    # --- matnet.sample ----------------------------------------------------------------------------
    ("sample", "{root}/run/checkpoint --out {root}/x.jpeg2", "'.jpeg2' is not an image format"),
    ("sample", "{root}/run/checkpoint --out {root}/samples", "no file extension"),
    ("sample", "{root}/run/checkpoint --out {root}/empty", "is a folder"),
    ("sample", "{root}/run/checkpoint --out {root}/run/checkpoint/s.png", "inside the checkpoint folder"),
    ("sample", "{root}/run/checkpoint --out {root}/run/kl_per_layer.png", "is the run's own kl_per_layer.png"),
    ("sample", "{root}/run/checkpoint --out /proc/s.png", "cannot write in /proc"),
    ("sample", "{root}/run/checkpoint --n 0", "argument --n: must be an integer from 1 to 10,000"),
    ("sample", "{root}/run/checkpoint --seed -1", "argument --seed: must be an integer between 0"),
    ("sample", "{root}/run/checkpoint --json {root}/s.json", "--json is written with --by-component only"),
    ("sample", "{root}/run/checkpoint --by-component --out {root}/s.png --json {root}/s.png", "name the same file"),
    ("sample", "{root}/run/checkpoint --by-component --per-component 0", "argument --per-component"),
    ("sample", "{root}/run/checkpoint --by-component --out {root}/s.png", "needs a model trained with a mixture"),
    ("sample", "{root}/run --out {root}/s.png", "is a training run folder"),
    ("sample", "{root}/cond/checkpoint --out {root}/s.png", "matnet.impute"),
    # --- matnet.impute ----------------------------------------------------------------------------
    ("impute", "{root}/cond/checkpoint --out {root}/grid.jpeg2", "'.jpeg2' is not an image format"),
    ("impute", "{root}/cond/checkpoint --out {root}/grid.png --json {root}/cond/checkpoint/i.json", "inside the checkpoint"),
    ("impute", "{root}/cond/checkpoint --json {root}/empty/", "is a folder"),
    ("impute", "{root}/cond/checkpoint --out {root}/g.png --mask {root}/mask30x28.png", "30x28 pixels"),
    ("impute", "{root}/cond/checkpoint --out {root}/g.png --mask {root}/mask14.png", "14x14 pixels"),
    ("impute", "{root}/cond/checkpoint --out {root}/g.png --mask {root}/notimage.png", "not a readable image"),
    ("impute", "{root}/cond/checkpoint --out {root}/g.png --mask {root}/empty", "not one of quadrants"),
    ("impute", "{root}/cond/checkpoint --rows 0", "argument --rows"),
    ("impute", "{root}/cond/checkpoint --batch-size 0", "argument --batch-size"),
    ("impute", "{root}/cond/checkpoint --samples 0", "argument --samples"),
    ("impute", "{root}/cond/checkpoint --iwae-k 0", "argument --iwae-k"),
    ("impute", "{root}/cond/checkpoint --gibbs-steps 0", "argument --gibbs-steps"),
    ("impute", "{root}/cond/checkpoint --occluders 0", "argument --occluders"),
    ("impute", "{root}/cond/checkpoint --limit -1", "argument --limit"),
    ("impute", "{root}/cond/checkpoint --visible 4", "argument --visible: invalid choice"),
    ("impute", "{root}/cond --out {root}/g.png", "is a training run folder"),
    ("impute", "{root}/cond/checkpoint --out {root}/g.png --images {root}/file.txt", "no such folder"),
    ("impute", "{root}/cond/checkpoint --out {root}/g.png --seed 99999999999999999999", "argument --seed"),
    # --- matnet.bench -----------------------------------------------------------------------------
    ("bench", "--json {root}/run/checkpoint/b.json", "inside the checkpoint folder"),
    ("bench", "--json {root}/empty", "is a folder"),
    ("bench", "--steps -1", "argument --steps: must be an integer >= 0"),
    ("bench", "quality --minutes 0", "argument --minutes: must be a number > 0"),
    ("bench", "quality --minutes nan", "argument --minutes: must be a number > 0"),
    ("bench", "quality --out {root}/run/checkpoint", "inside the checkpoint folder"),
    ("bench", "quality --out {root}/file.txt", "is a file"),
    ("bench", "quality --models resnet", "--models 'resnet'"),
]


def _args(template: str, root: Path) -> list[str]:
    return template.replace("{root}", str(root)).split()


@pytest.mark.parametrize("command,template,expected", CORPUS,
                         ids=[f"{c}:{t.replace('{root}/', '')[:50]}" for c, t, _ in CORPUS])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(place, capsys, command, template, expected):
    before = digest(place)
    code = run_main(command, _args(template, place))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected.replace("{root}", str(place)) in lines[0], lines[0]
    assert digest(place) == before


# As a user runs them: a new interpreter, the message on stderr, nothing on stdout.
SUBPROCESS = [
    ("train", "--preset tiny --out {root}/run/checkpoint --max-steps 1 --quiet", "is a checkpoint folder"),
    ("train", "--preset tiny --out {root}/new --max-steps -5 --quiet", "train.max_steps=-5"),
    ("evaluate", "{root}/run/checkpoint --batch-size -1", "--batch-size"),
    ("sample", "{root}/run/checkpoint --out {root}/x.jpeg2", "not an image format"),
    ("impute", "{root}/cond/checkpoint --out {root}/grid.jpeg2", "not an image format"),
    ("bench", "quality --minutes 0", "--minutes"),
]


@pytest.mark.parametrize("command,template,expected", SUBPROCESS, ids=[f"{c}:{i}" for i, (c, _, _) in enumerate(SUBPROCESS)])
def test_as_a_user_runs_them(place, command, template, expected):
    before = digest(place)
    r = subprocess.run([sys.executable, "-m", f"matnet.{command}", *_args(template, place)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert digest(place) == before


def test_outputs_into_missing_folders_are_made_after_the_work(place, tmp_path, capsys):
    """What was refused only after hours of work (evaluate --json into a missing folder) now just works."""
    json_out = tmp_path / "not" / "yet" / "eval.json"
    code = run_main("evaluate", [str(place / "run" / "checkpoint"), "--samples", "2", "--limit", "3",
                                    "--json", str(json_out), "--quiet"])
    assert code == 0 and json.loads(json_out.read_text())["iwae_k"] == 2
    grid = tmp_path / "grids" / "samples.jpg"
    code = run_main("sample", [str(place / "run" / "checkpoint"), "--n", "4", "--out", str(grid)])
    assert code == 0 and Image.open(grid).format == "JPEG"


def test_a_mask_drawn_at_a_multiple_of_the_image_size_is_scaled_and_said(place, tmp_path, capsys):
    mask = Image.new("L", (56, 56), 0)
    mask.paste(255, (0, 0, 28, 56))
    mask.save(tmp_path / "left56.png")
    code = run_main("impute", [str(place / "cond" / "checkpoint"), "--mask", str(tmp_path / "left56.png"),
                                  "--limit", "2", "--samples", "1", "--iwae-k", "1", "--grid-images", "1",
                                  "--out", str(tmp_path / "g.png"), "--json", str(tmp_path / "i.json"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    figures = json.loads((tmp_path / "i.json").read_text())
    assert "drawn at 56x56, scaled down to 28x28" in figures["mask"]
    assert "scaled down" in capsys.readouterr().out


def test_unforeseen_io_errors_that_name_a_file_are_one_line(tmp_path, capsys):
    def disk_full(argv):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "metrics.jsonl"))

    with pytest.raises(SystemExit) as e:
        cli.run(disk_full, [])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'run' / 'metrics.jsonl'}: No space left on device\n"
    with pytest.raises(OSError):  # one that names no file is not a user's mistake to be told in a line
        cli.run(lambda argv: (_ for _ in ()).throw(OSError("socket")), [])
