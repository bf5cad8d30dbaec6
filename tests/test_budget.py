"""One owner for the training budget (matnet/budget.py): what a run trains and how often it reports,
counted the same by matnet.train (from the images it loaded) and by a search (before any data is read)."""
from __future__ import annotations

import json

import pytest
import torch

from matnet.budget import budget
from matnet.config import ConfigError
from matnet.sections import DataConfig
from matnet.data import DatasetMissingError, load_split, training_images
from matnet.evaluate import evaluate_elbo, evaluate_iwae
from matnet.model import MatNet
from matnet.presets import preset
from matnet.train import train
from tests.helpers import micro_config
from tests.helpers import write_photos


@pytest.mark.parametrize("settings", [{}, {"train_limit": 1234}, {"val_size": 5000}, {"val_size": 0, "train_limit": 0},
                                      {"binarize": "fixed"}])
def test_counted_without_reading_equals_the_split_training_loads(settings):
    data = DataConfig(dataset="mnist", **settings)
    assert training_images(data) == len(load_split(data, "train"))


def test_an_image_folder_is_counted_too(tmp_path):
    write_photos(tmp_path / "photos")
    cfg = preset("faces-occluders").with_overrides({"data.image_folder": str(tmp_path / "photos"), "data.val_size": 2,
                                                    "train.batch_size": 3, "train.epochs": 5})
    n = len(load_split(cfg.data, "train"))
    assert training_images(cfg.data) == n == 12 - 1 - 2   # 12 photographs, a tenth (1) for test, 2 for validation
    plan = budget(cfg)
    assert plan == budget(cfg, n) and plan.steps_per_epoch == 3 and plan.total_steps == 15 and plan.evaluations == 5


def test_budget_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="needs data.image_folder"):
        budget(preset("faces-occluders"))
    with pytest.raises(DatasetMissingError, match="no such folder"):
        budget(preset("faces-occluders").override("data.image_folder", str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match="larger than the training split"):
        budget(preset("tiny").with_overrides({"data.train_limit": 10, "train.batch_size": 50}))
    with pytest.raises(ConfigError, match="leaves no training images"):
        budget(preset("tiny").override("data.val_size", 60000))


def test_evaluations_count_the_last_partial_interval():
    cfg = preset("tiny").with_overrides({"data.train_limit": 1000, "train.batch_size": 50, "train.epochs": 3})
    assert budget(cfg).steps_per_epoch == 20 and budget(cfg).total_steps == 60
    assert budget(cfg).evaluations == 3                                        # one per epoch
    assert budget(cfg.override("train.eval_every_steps", 25)).evaluations == 3  # 25, 50, 60
    assert budget(cfg.override("train.max_steps", 7)).evaluations == 1


def test_a_run_reports_as_often_as_its_budget_says_and_marks_its_last_report(tmp_path):
    cfg = micro_config(max_steps=10, eval_every_steps=4)
    reports = []
    train(cfg, tmp_path / "run", report=lambda m, ckpt: reports.append(m), progress=False)
    assert [m["step"] for m in reports] == [4, 8, 10] and len(reports) == budget(cfg).evaluations
    assert [m["final"] for m in reports] == [False, False, True]
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["final"] for m in lines] == [False, False, True]


def test_evaluators_leave_the_callers_random_state_alone():
    cfg = micro_config()
    split = load_split(cfg.data, "valid")
    model = MatNet(cfg.model, split.shape)
    torch.manual_seed(7)
    expected = torch.rand(3)
    for evaluate in (lambda: evaluate_elbo(model, split, 20, 10, torch.device("cpu"), amp=False),
                     lambda: evaluate_iwae(model, split, k=3, limit=4, progress=False)):
        torch.manual_seed(7)
        first = evaluate()
        assert torch.equal(torch.rand(3), expected)  # the caller's stream goes on as if nothing was drawn
        torch.manual_seed(123)
        timing = ("seconds", "samples_per_s")          # how long it took is not part of the result
        again = evaluate()
        assert {k: v for k, v in again.items() if k not in timing} == {k: v for k, v in first.items() if k not in timing}
