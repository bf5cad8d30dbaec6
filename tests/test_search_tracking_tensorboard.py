"""TensorBoard as a tracking back-end (search/tracking/tensorboard_tracker.py, trial_events.py): what the
tracking writer is sent is written as event files TensorBoard reads back (scalars at matnet's steps, the
per-layer KL, figures as images, the HParams experiment and each trial's session), beside MLflow from one
writer, and nothing twice when the writer starts again (a resumed search)."""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.metadata import (EXPERIMENT_TAG, SESSION_END_INFO_TAG, SESSION_START_INFO_TAG,
                                                  parse_experiment_plugin_data, parse_session_end_info_plugin_data,
                                                  parse_session_start_info_plugin_data)

from search.space import load_space
from search.tracking import TensorboardTracker
from search.tracking.runs import start_parent
from search.tracking.writer import TrackingWriter
from tests.helpers import tune_checkpoint, write_space

METRIC = "val_elbo_nats"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tune_checkpoint(tmp_path_factory.mktemp("trial"))


def events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def hparams_records(run: Path) -> dict[str, list]:
    """The HParams plugin's records of a run, by tag, each parsed as the plugin parses it."""
    parse = {EXPERIMENT_TAG: parse_experiment_plugin_data, SESSION_START_INFO_TAG: parse_session_start_info_plugin_data,
             SESSION_END_INFO_TAG: parse_session_end_info_plugin_data}
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    out: dict[str, list] = {}
    for file in sorted(run.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(file)).Load():
            for value in event.summary.value:
                if value.tag in parse:
                    out.setdefault(value.tag, []).append(parse[value.tag](value.metadata.plugin_data.content))
    return out


def result(it: int, value: float) -> tuple:
    return it, 10 * it, int(time.time() * 1000), {METRIC: value, "training_iteration": float(it),
                                                 "val_kl/0": 3.0 + it, "val_kl/1": 1.0}


def test_a_trial_is_written_as_tensorboard_reads_it_beside_mlflow_and_nothing_twice_after_a_restart(tmp_path,
                                                                                                    checkpoint):
    space = load_space(write_space(tmp_path, "tb", n=2, steps=40, tensorboard={"enabled": True, "sample_images": 4}))
    logdir = tmp_path / "search" / "tensorboard"
    info = SimpleNamespace(name="tb", strategy="tpe+asha", num_samples=2)
    tracker = TensorboardTracker({"logdir": str(logdir)}, space.settings.tensorboard, info)
    tracker.start(space, str(tmp_path / "search"), resume=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = start_parent(uri, "tb", "tb", params={}, tags={})
    sinks = [tracker.sink(space), ("MLflow", "search.tracking.trial_runs:TrialRuns",
                                   {"tracking_uri": uri, "parent_run_id": parent, "sample_images": 4})]
    drawn = space.valid_samples(1, 0)[0]

    writer = TrackingWriter(sinks, space, "tb")
    writer.send("start", "t1", drawn)
    for it in (1, 2):
        writer.send("result", "t1", drawn, *result(it, 200.0 - it))
    writer.close()  # interrupted: the trial goes on after a resume
    writer = TrackingWriter(sinks, space, "tb")
    writer.send("start", "t1", drawn)
    for it in (2, 3, 4):  # iteration 2 again: a trial restarted from its checkpoint
        writer.send("result", "t1", drawn, *result(it, 200.0 - it))
    writer.send("finish", "t1", drawn, "completed", 40, int(time.time() * 1000),
                {"iterations": 4.0, f"best_{METRIC}": 196.0}, {"status": "completed"}, checkpoint, {}, "t1 (completed)")
    writer.close()

    run = events(logdir / "t1")
    tags = run.Tags()
    assert [(s.step, s.value) for s in run.Scalars(METRIC)] == [(10, 199.0), (20, 198.0), (30, 197.0), (40, 196.0)]
    assert [s.value for s in run.Scalars("val_kl/0")] == [4.0, 5.0, 6.0, 7.0]  # the per-layer KL, one section
    assert [s.value for s in run.Scalars(f"best_{METRIC}")] == [196.0]
    assert {"figures/samples", "figures/kl_per_layer", "training/kl_per_layer"} <= set(tags["images"]), tags
    assert run.Images("figures/samples")[0].width > 50
    records = hparams_records(logdir / "t1")
    assert len(records[SESSION_START_INFO_TAG]) == 1 and len(records[SESSION_END_INFO_TAG]) == 1
    start = records[SESSION_START_INFO_TAG][0]
    assert start.hparams["train.lr"].number_value == pytest.approx(drawn["train.lr"])
    assert records[SESSION_END_INFO_TAG][0].status == 1  # STATUS_SUCCESS
    experiment = hparams_records(logdir)[EXPERIMENT_TAG]
    assert len(experiment) == 1
    assert [h.name for h in experiment[0].hparam_infos] == list(space.distributions())
    assert [m.name.tag for m in experiment[0].metric_infos] == [METRIC, f"best_{METRIC}", "iterations"]
    lr = experiment[0].hparam_infos[0]
    assert (lr.domain_interval.min_value, lr.domain_interval.max_value) == (1.0e-4, 2.0e-2)

    client = MlflowClient(uri)  # the same messages, the same figures, in MLflow
    child = client.search_runs([client.get_run(parent).info.experiment_id],
                               filter_string=f"tags.mlflow.parentRunId = '{parent}'")[0]
    assert child.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(child.info.run_id, METRIC)] == [10, 20, 30, 40]
    assert {a.path for a in client.list_artifacts(child.info.run_id, "figures")} >= {"figures/samples.png"}

    tracker.start(space, str(tmp_path / "search"), resume=True)  # a resumed search: the experiment not again
    assert len(hparams_records(logdir)[EXPERIMENT_TAG]) == 1


# The page's text, shadow roots and same-origin frames included: TensorBoard's plugins draw in them.
DEEP_TEXT = """function deep(root) {
    let out = '';
    const walk = (node) => {
        if (node.nodeType === 3) out += node.textContent + ' ';
        if (node.shadowRoot) walk(node.shadowRoot);
        if (node.tagName === 'IFRAME' && node.contentDocument) walk(node.contentDocument);
        for (const child of node.childNodes || []) walk(child);
    };
    walk(root);
    return out;
}"""


def test_tensorboards_hparams_table_lists_the_trials_in_a_browser(tmp_path):
    """`tensorboard --logdir` on a search's event files, its HParams tab opened in headless Chromium:
    the table lists every trial with its parameters and metric."""
    import subprocess
    import sys
    import urllib.request

    from tests.browser import Browser, chromium_path
    from tests.servers import free_port, kill_tree, required, wait_for
    required(chromium_path)
    space = load_space(write_space(tmp_path, "tb", n=3, steps=40, tensorboard={"enabled": True}))
    logdir = tmp_path / "tensorboard"
    info = SimpleNamespace(name="tb", strategy="tpe+asha", num_samples=3)
    tracker = TensorboardTracker({"logdir": str(logdir)}, space.settings.tensorboard, info)
    tracker.start(space, str(tmp_path), resume=False)
    writer = TrackingWriter([tracker.sink(space)], space, "tb")
    trials = {f"trial{i}": drawn for i, drawn in enumerate(space.valid_samples(3, 0))}
    for i, (trial_id, drawn) in enumerate(trials.items()):
        writer.send("start", trial_id, drawn)
        writer.send("result", trial_id, drawn, *result(1, 150.0 + i))
        writer.send("finish", trial_id, drawn, "completed", 10, int(time.time() * 1000),
                    {"iterations": 1.0, f"best_{METRIC}": 150.0 + i}, {"status": "completed"}, None, {}, trial_id)
    writer.close()

    port = free_port()
    log = open(tmp_path / "tensorboard.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(logdir), "--host",
                               "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(url, timeout=2).status == 200, 90, "tensorboard", server,
                 tmp_path / "tensorboard.log")
        with Browser() as browser:
            browser.open(f"{url}/#hparams")
            text = browser.wait_for(f"(() => {{ const t = ({DEEP_TEXT})(document);"
                                    " return t.includes('trial2') && t.includes('train.lr') ? t : ''; })()",
                                    what="the HParams table with the trials", timeout=60)
            shot = browser.screenshot(tmp_path / "hparams.png")
    finally:
        kill_tree(server.pid)
        log.close()
    assert all(trial_id in text for trial_id in trials), text[:3000]
    assert METRIC in text, text[:3000]
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
