"""The registered model's `champion` alias moves to a new export only when it is better on the same
evaluation (data, split, images, K); otherwise it stays, and the export says why."""
from __future__ import annotations

import pytest

from matnet.train import train
from search.tracking.model import champion_verdict, evaluation_key, log_model
from search.tracking.runs import start_parent
from tests.helpers import micro_config

EVAL = {"dataset": "mnist/test (dynamic binarization)", "split": "test", "iwae_k": 50, "n_images": 300,
        "subset": {"n": 300, "of": 10000, "seed": 0}}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(micro_config(max_steps=2).with_overrides({"data.eval_limit": 20}), out, progress=False)
    return out / "checkpoint"


def test_champion_moves_only_to_a_better_model_on_the_same_evaluation(tmp_path, checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_parent(uri, "reg", "reg", params={}, tags={})
    first = log_model(uri, parent, checkpoint, "matnet-reg", {**EVAL, "nll_nats": 100.0})
    assert first["champion_version"] == "1" and first["champion"].startswith("moved to version 1")
    worse = log_model(uri, parent, checkpoint, "matnet-reg", {**EVAL, "nll_nats": 110.0})
    assert worse["version"] == "2" and worse["champion_version"] == "1" and "stays: it is better" in worse["champion"]
    other = log_model(uri, parent, checkpoint, "matnet-reg", {**EVAL, "iwae_k": 5000, "nll_nats": 90.0})
    assert other["champion_version"] == "1" and "evaluated on other data, split, images or K" in other["champion"]
    better = log_model(uri, parent, checkpoint, "matnet-reg", {**EVAL, "nll_nats": 95.0})
    assert better["champion_version"] == "4" and "better than version 1" in better["champion"]
    from mlflow.tracking import MlflowClient
    assert str(MlflowClient(uri).get_model_version_by_alias("matnet-reg", "champion").version) == "4"


def test_the_verdict_reads_the_evaluation_a_version_was_scored_on():
    class Version:
        version, tags = "3", {"evaluation": evaluation_key(EVAL), "nll_nats": "100.0"}
    assert champion_verdict({**EVAL, "nll_nats": 99.0}, None) == (True, "the first version")
    assert champion_verdict({**EVAL, "nll_nats": 99.0}, Version())[0]
    assert not champion_verdict({**EVAL, "nll_nats": 101.0}, Version())[0]
    assert not champion_verdict({**EVAL, "n_images": 10000, "nll_nats": 50.0}, Version())[0]
