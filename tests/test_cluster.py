"""A real cluster on this machine: two Ray nodes started with `ray start` (token authentication on),
an MLflow tracking server on PostgreSQL, and `python -m search.run --address ... --tracking-uri ...`.

- a search runs trials on both nodes, every trial's run is in PostgreSQL, and best/ is exported;
- the worker node dies in the middle of a search: its trial restarts from its last checkpoint on the
  head node, the search finishes, and no trial or MLflow run is lost or duplicated.

Marked `cluster`. They need PostgreSQL's server programs (.ci/run installs Debian's `postgresql`);
without them they are skipped, except under CI (CI=true), where that is a failure. Every server is
stopped at the end, also when a test fails (tests/servers.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import ServerMissing, mlflow_server, postgres, postgres_bin, ray_cluster

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]

SPACE = """\
experiment:
  name: {name}
  num_samples: {n}
  max_concurrent: 2
  resources: {{cpu: 1, gpu: 0}}
  max_failures: 2
  keep_checkpoints: 1
base: tiny
data: {{dataset: mnist, train_limit: 500, eval_limit: 100}}
fixed:
  train: {{max_steps: {steps}, eval_every_steps: 8, batch_size: 50, device: cpu}}
  model: {{data_width: 8, top_latents: 8, meta_modules: [{{scale: 14, width: 8, modules: 1, latent_channels: 2}}]}}
search:
  train.lr: {{type: float, low: 1.0e-3, high: 3.0e-3, log: true}}
scheduler: {{type: none}}
sampler: {{type: random, seed: 0}}
mlflow: {{experiment: {name}, sample_images: 9}}
export: {{iwae_k: 4, limit: 40, top_trials: 2}}
"""


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """PostgreSQL and an MLflow tracking server on it with served artifacts: (server URI, database URI)."""
    try:
        postgres_bin()
    except ServerMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"{e}: CI must install it (.ci/run)")
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("tracking")
    with postgres() as db, mlflow_server(db, root / "artifacts") as uri:
        yield uri, db


def write_space(tmp_path: Path, name: str, n: int, steps: int) -> Path:
    f = tmp_path / f"{name}.yaml"
    f.write_text(SPACE.format(name=name, n=n, steps=steps))
    return f


def search_command(space: Path, cluster: dict, storage: Path, uri: str) -> list[str]:
    return [sys.executable, "-m", "search.run", str(space), "--address", cluster["address"], "--storage", str(storage),
            "--shared-storage", "--tracking-uri", uri]


def children(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return client, parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def results(trial_dir: Path) -> list[dict]:
    """The results Tune logged for a trial (result.json), without a line still being written."""
    f = trial_dir / "result.json"
    out = []
    for line in (f.read_text().splitlines() if f.exists() else []):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def node_ids(cluster: dict) -> dict[str, str]:
    """{"head": id, "worker": id} of the live nodes."""
    code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(json.dumps({('head' if 'node:__internal_head__' in n['Resources'] else 'worker'): n['NodeID'] "
            "for n in ray.nodes() if n['Alive']}))" % cluster["address"])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cluster["env"], timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_search_runs_on_two_nodes_and_tracks_to_mlflow_on_postgresql(tmp_path, tracking):
    uri, db = tracking
    with ray_cluster(tmp_path / "cluster", cpus=(1, 1)) as cluster:
        ids = node_ids(cluster)
        space = write_space(tmp_path, "two-nodes", n=4, steps=16)
        r = subprocess.run(search_command(space, cluster, tmp_path / "shared", uri), capture_output=True, text=True,
                           cwd=tmp_path, env=cluster["env"], timeout=900)
        assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    exp_dir = tmp_path / "shared" / "two-nodes"

    # Trials ran on both nodes (one CPU each, two trials at once).
    ran_on = {res["ray_node_id"] for d in exp_dir.glob("run_trial_*") for res in results(d)}
    assert ran_on == set(ids.values()), (ran_on, ids)

    # Every trial's run is in PostgreSQL: read through the server, and straight from the database.
    for tracking_uri in (uri, db):
        client, parents, kids = children(tracking_uri, "two-nodes")
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert len(kids) == 4 and len({k.data.tags["trial_id"] for k in kids}) == 4
        assert all(k.info.status == "FINISHED" for k in kids)
        assert {k.data.tags["ray_node_id"] for k in kids} == set(ids.values())
        assert "best_test_nll_nats" in parents[0].data.metrics
    # Artifacts went through the server to the artifact store it serves.
    client, _, kids = children(uri, "two-nodes")
    figs = {Path(a.path).name for a in client.list_artifacts(kids[0].info.run_id, "figures")}
    assert "samples.png" in figs

    # best/ was exported, and loads.
    from matnet.checkpoint import load_checkpoint
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["trials"]["total"] == 4 and summary["best"]["evaluation"]["iwae_k"] == 4
    load_checkpoint(exp_dir / "best")


def test_a_lost_worker_node_restarts_its_trial_from_its_checkpoint_on_the_head(tmp_path, tracking):
    uri, _ = tracking
    steps, n = 96, 3
    with ray_cluster(tmp_path / "cluster", cpus=(1, 1)) as cluster:
        ids = node_ids(cluster)
        space = write_space(tmp_path, "lost-node", n=n, steps=steps)
        log = open(tmp_path / "search.log", "w")
        proc = subprocess.Popen(search_command(space, cluster, tmp_path / "shared", uri), stdout=log,
                                stderr=subprocess.STDOUT, cwd=tmp_path, env=cluster["env"])
        try:
            exp_dir = tmp_path / "shared" / "lost-node"
            # Wait until a trial on the worker node has reported (and checkpointed) twice.
            victim, deadline = None, time.monotonic() + 600
            while victim is None and time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "search.log").read_text()[-5000:]
                for d in exp_dir.glob("run_trial_*"):
                    res = results(d)
                    if len(res) >= 2 and res[-1]["ray_node_id"] == ids["worker"] and res[-1]["step"] < steps:
                        victim = d
                time.sleep(0.5)
            assert victim is not None, "no trial ran on the worker node"
            cluster["nodes"][1].stop()  # the worker node's whole process tree, SIGKILL
            killed_at = results(victim)[-1]["step"]
            assert proc.wait(timeout=900) == 0, (tmp_path / "search.log").read_text()[-5000:]
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()

    # The interrupted trial went on from a checkpoint (not from step 0) on the head node, and finished.
    # Tune's log is append-only: steps after the last checkpoint Tune had registered are done again,
    # with the same figures (every random draw derives from the seed and the step).
    res = results(victim)
    restart = next(i for i, x in enumerate(res) if i > 0 and x["iterations_since_restore"] == 1)
    before, after = res[:restart], res[restart:]
    assert before[-1]["ray_node_id"] == ids["worker"] and after[0]["ray_node_id"] == ids["head"]
    assert 8 < after[0]["step"] <= max(killed_at, before[-1]["step"]) + 8, (before, after)
    assert [x["step"] for x in after] == list(range(after[0]["step"], steps + 1, 8))
    first_time = {x["step"]: x["val_elbo_nats"] for x in before}
    for x in after:
        if x["step"] in first_time:
            assert x["val_elbo_nats"] == first_time[x["step"]], x["step"]

    # Every trial finished once; MLflow has one run per trial, none duplicated, none left RUNNING.
    for d in exp_dir.glob("run_trial_*"):
        assert results(d)[-1]["step"] == steps, d.name
    client, parents, kids = children(uri, "lost-node")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(kids) == n and len({k.data.tags["trial_id"] for k in kids}) == n
    assert all(k.info.status == "FINISHED" for k in kids)
    victim_run = [k for k in kids if k.data.tags["trial_id"] in victim.name][0]
    assert int(victim_run.data.tags["restarts"]) >= 1
    hist = [m.step for m in client.get_metric_history(victim_run.info.run_id, "val_elbo_nats")]
    assert hist == sorted(set(hist)) and hist[-1] == steps
    assert (exp_dir / "best").is_dir() and json.loads((exp_dir / "summary.json").read_text())["trials"]["total"] == n
