"""MLflow's compare page as a user opens it (MLflow 3.17, headless Chromium): the quickstart's 8 trial
runs, as the tracking writer logs them, compared. The page lists the searched parameters once each
(the flattened names, not a JSON blob of model.meta_modules) and the search's metric, and no `step`
metric (MLflow keeps steps itself); the fixed settings are in each run's config.json, not its params."""
from __future__ import annotations

import json
import time
import urllib.parse

from mlflow.tracking import MlflowClient

from search.space import load_space
from search.tracking.runs import start_parent
from search.tracking.writer import TrackingWriter
from tests.helpers import QUICKSTART
from tests.servers import mlflow_server, required
from tests.test_search_tracking_tensorboard import DEEP_TEXT

METRIC = "val_elbo_nats"


def test_the_compare_page_of_a_searchs_trials_shows_the_searched_parameters_and_the_metric(tmp_path):
    from tests.browser import Browser, chromium_path
    required(chromium_path)
    space = load_space(QUICKSTART)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_parent(uri, "quickstart", "quickstart", params={}, tags={})
    writer = TrackingWriter([("MLflow", "search.tracking.trial_runs:TrialRuns",
                              {"tracking_uri": uri, "parent_run_id": parent, "sample_images": 0})], space, "quickstart")
    drawn_all = space.valid_samples(8, 0)
    for i, drawn in enumerate(drawn_all):
        trial = f"trial{i}"
        writer.send("start", trial, drawn)
        for it in (1, 2):
            writer.send("result", trial, drawn, it, 100 * it, int(time.time() * 1000),
                        {METRIC: 150.0 - it + i, "training_iteration": float(it)})
        writer.send("finish", trial, drawn, "completed", 200, int(time.time() * 1000),
                    {"iterations": 2.0, f"best_{METRIC}": 148.0 + i}, {"status": "completed"}, None, {}, trial)
    writer.close()

    client = MlflowClient(uri)
    experiment = client.get_run(parent).info.experiment_id
    kids = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(kids) == 8
    searched = set().union(*(set(d) for d in drawn_all))
    assert all(set(k.data.params) <= searched and "step" not in k.data.metrics for k in kids)
    assert {a.path for a in client.list_artifacts(kids[0].info.run_id)} >= {"config.json"}

    with mlflow_server(uri, tmp_path / "artifacts") as server, Browser() as browser:
        runs = urllib.parse.quote(json.dumps([k.info.run_id for k in kids]))
        browser.open(f"{server}/#/compare-runs?runs={runs}&experiments={urllib.parse.quote(json.dumps([experiment]))}")
        text = browser.wait_for(f"(() => {{ const t = ({DEEP_TEXT})(document);"
                                f" return t.includes('{METRIC}') && t.includes('train.lr') ? t : ''; }})()",
                                what="the compare page with its parameters and metrics", timeout=90)
        shot = browser.screenshot(tmp_path / "compare.png")
    assert all(name in text for name in searched), sorted(n for n in searched if n not in text)
    assert '[{"scale":' not in text and "model.meta_modules " not in text.replace("model.meta_modules.", "")
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
