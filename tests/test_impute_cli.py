"""python -m matnet.impute on both kinds of checkpoint (conditional, and unconditional like a search's
best/), on a data set and on a folder of photographs; matnet.evaluate / matnet.sample on a conditional
checkpoint; one-line errors for bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from matnet.checkpoint import save_checkpoint
from matnet.sections import MetaModule
from matnet.presets import preset
from matnet.build import build_model
from matnet.train import train
from tests.helpers import micro_config
from tests.helpers import write_photos


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300)


def run_in_process(capsys, *args) -> tuple[int, str]:
    """matnet.impute's command line without a new interpreter: (exit status, stderr)."""
    from matnet import cli
    from matnet.impute import main
    with pytest.raises(SystemExit) as e:
        cli.run(main, list(args))
    return e.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    cfg = micro_config(max_steps=3)
    train(cfg, root / "generate", progress=False)
    train(cfg.override("data.task", "impute"), root / "impute", progress=False)
    return {"conditional": root / "impute" / "checkpoint", "unconditional": root / "generate" / "checkpoint"}


@pytest.mark.parametrize("kind", ["conditional", "unconditional"])
def test_impute_writes_its_grid_and_json(tmp_path, checkpoints, kind):
    r = run_cli("matnet.impute", str(checkpoints[kind]), "--mask", "quadrants", "--limit", "6", "--samples", "3",
                "--iwae-k", "4", "--gibbs-steps", "3", "--grid-images", "4", "--out", str(tmp_path / "grid.png"),
                "--json", str(tmp_path / "figures.json"), "--quiet")
    assert r.returncode == 0, r.stderr
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert {"nll_nats", "mse", "method", "nll_kind", "iwae_k", "table", "n_images"} <= figures.keys()
    assert [row["visible"] for row in figures["table"]] == [1, 2, 3]          # the paper's table
    assert [row["unknown_pixels"] for row in figures["table"]] == [588, 392, 196]
    assert figures["method"].startswith("conditional MatNet" if kind == "conditional" else "Metropolis-within-Gibbs")
    assert ("not a bound" in figures["nll_kind"]) == (kind == "unconditional")
    assert 0 < figures["mse"] < 1 and figures["nll_nats"] > 0
    # Rows: 4 images; columns: original, masked input, 3 imputations; 28x28 tiles, 2-pixel padding.
    assert Image.open(tmp_path / "grid.png").size == (2 + 5 * 30, 2 + 4 * 30)
    assert "3 visible" in r.stdout and r.stdout.count("\n") >= 7


def test_fixed_visible_quadrants_other_masks_and_pseudo_gibbs(tmp_path, capsys, checkpoints):
    code, err = run_in_process(capsys, str(checkpoints["unconditional"]), "--mask", "quadrants", "--visible", "2",
                               "--method", "pseudo-gibbs", "--limit", "4", "--samples", "2", "--iwae-k", "2",
                               "--gibbs-steps", "2", "--out", str(tmp_path / "q.png"), "--json", str(tmp_path / "q.json"),
                               "--quiet")
    assert code == 0, err
    figures = json.loads((tmp_path / "q.json").read_text())
    assert len(figures["table"]) == 1 and figures["table"][0]["visible"] == 2 and figures["chain"] == "pseudo-gibbs"
    assert figures["method"].startswith("pseudo-Gibbs")
    code, err = run_in_process(capsys, str(checkpoints["conditional"]), "--mask", "occluders", "--occluders", "2",
                               "--size", "7", "--limit", "4", "--samples", "2", "--iwae-k", "2",
                               "--out", str(tmp_path / "o.png"), "--json", str(tmp_path / "o.json"), "--quiet")
    assert code == 0, err
    figures = json.loads((tmp_path / "o.json").read_text())
    assert figures["mask"] == "occluders: 2 of 7x7" and 49 <= figures["unknown_pixels"] <= 98


def test_impute_a_folder_of_photographs_with_a_64x64_conditional_model(tmp_path, capsys):
    write_photos(tmp_path / "photos")
    cfg = preset("faces-occluders")
    cfg.model.meta_modules = [MetaModule(0, 16, 1, 4), MetaModule(16, 8, 1, 2), MetaModule(32, 8, 1, 2)]
    cfg.model.data_width, cfg.model.top_latents = 8, 4
    cfg.data.image_folder = str(tmp_path / "photos")
    torch.manual_seed(0)
    model = build_model(cfg, (3, 64, 64))
    save_checkpoint(tmp_path / "faces", model, cfg, {"dataset": "image-folder", "step": 0})
    code, err = run_in_process(capsys, str(tmp_path / "faces"), "--images", str(tmp_path / "photos"), "--limit", "5",
                               "--samples", "2", "--iwae-k", "2", "--grid-images", "3",
                               "--out", str(tmp_path / "faces.png"), "--json", str(tmp_path / "faces.json"), "--quiet")
    assert code == 0, err
    figures = json.loads((tmp_path / "faces.json").read_text())
    assert figures["mask"] == "occluders: 3 of 20x20" and figures["n_images"] == 5 and "bpd" in figures["table"][0]
    assert Image.open(tmp_path / "faces.png").size == (2 + 4 * 66, 2 + 3 * 66)


def test_evaluate_scores_a_conditional_checkpoint_on_its_unknown_pixels_and_sample_refuses(tmp_path, checkpoints):
    # The search's export evaluates best/ with matnet.evaluate's evaluate_iwae: it works on conditional models.
    r = run_cli("matnet.evaluate", str(checkpoints["conditional"]), "--samples", "3", "--limit", "6",
                "--json", str(tmp_path / "eval.json"), "--quiet")
    assert r.returncode == 0, r.stderr
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert figures["bound_on"].startswith("unknown pixels") and figures["mask"] == "quadrants: 1-3 of 4 visible"
    r = run_cli("matnet.sample", str(checkpoints["conditional"]), "--out", str(tmp_path / "s.png"))
    assert r.returncode == 2 and "matnet.impute" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,expected", [
    (["--mask", "stripes"], "not one of quadrants, occluders, centre"),
    (["--mask", "BROKEN"], "not a readable image"),
    (["--images", "/nonexistent/photos"], "no such folder"),
    (["--mask", "occluders", "--size", "40"], "between 1 and the image size 28"),
    (["--dataset", "cifar10", "--data-dir", "EMPTY"], "cifar-10-batches-py"),
])
def test_bad_input_is_one_line(tmp_path, capsys, checkpoints, args, expected):
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "broken.png") if a == "BROKEN" else a for a in args]
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    code, err = run_in_process(capsys, str(checkpoints["conditional"]), *args, "--limit", "2", "--quiet",
                               "--out", str(tmp_path / "g.png"))
    assert code == 2, err
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_training_on_an_image_folder_without_a_folder_is_one_line(tmp_path):
    r = run_cli("matnet.train", "--preset", "faces-occluders", "--out", str(tmp_path / "run"), "--max-steps", "1",
                "--quiet")
    assert r.returncode == 2 and "data.image_folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
