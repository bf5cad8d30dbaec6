"""A real cluster on this machine: two Ray nodes started with `ray start` (token authentication on,
the head serving Ray's dashboard and job API on 127.0.0.1), PostgreSQL with a database for MLflow's
tracking server and one for the Optuna study, and the README's search submitted with `ray job submit`.

- the job succeeds; its logs, read through the job API, end with the URL of the search's runs in
  MLflow; the dashboard's page is served, its API only with the token; trials ran on both nodes,
  every trial's run is in PostgreSQL, the Optuna study too, and best/ is exported;
- the MLflow UI at the URL the search printed, rendered by headless Chromium, shows the search's
  parent run and, expanded, its child runs (a screenshot is kept in the test's folder);
- the worker node dies in the middle of a search: its trial restarts from its last checkpoint on the
  head node, the search finishes, and no trial or MLflow run is lost or duplicated.

Marked `cluster`. They need PostgreSQL's server programs and Chromium (.ci/run installs Debian's
`postgresql` and `chromium`); without them they are skipped, except under CI (CI=true), where that
is a failure. Every server is stopped at the end, also when a test fails (tests/servers.py).
"""
from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import helpers
from search.bench.postgres import free_port
from tests.helpers import ROOT, mlflow_runs, small_space
from tests.servers import BIN, mlflow_server, postgres, postgres_bin, ray_cluster, required

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """PostgreSQL with the databases mlflow and optuna, and an MLflow tracking server on the first
    with served artifacts: (server URI, database URI)."""
    required(postgres_bin)
    root = tmp_path_factory.mktemp("tracking")
    with postgres(more=("optuna",)) as db, mlflow_server(db, root / "artifacts") as uri:
        yield uri, db


def write_space(tmp_path: Path, name: str, n: int, steps: int) -> Path:
    """n trials of one meta module, `steps` steps each reporting every 8, no early stopping."""
    space = small_space(name, n=n, steps=steps, every=8, strategy="random", experiment={"max_failures": 2},
                        mlflow={"experiment": name, "sample_images": 9}, export={"iwae_k": 4, "limit": 40,
                                                                                  "top_trials": 2},
                        search={"train.lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-3, "log": True}})
    space["fixed"]["model"]["meta_modules"] = [{"scale": 14, "width": 8, "modules": 1, "latent_channels": 2}]
    return helpers.write_space(tmp_path, name, space)


def search_command(space: Path, cluster: dict, storage: Path, uri: str) -> list[str]:
    return [sys.executable, "-m", "search.run", str(space), "--address", cluster["address"], "--storage", str(storage),
            "--shared-storage", "--tracking-uri", uri]


def children(uri: str, experiment: str):
    return mlflow_runs(uri, experiment)


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


def optuna_url(db: str, password: bool) -> str:
    """The Optuna database beside MLflow's on the same server; given to the search without its
    password (the head node has PGPASSWORD), as a user would."""
    from sqlalchemy.engine import make_url
    url = make_url(db)
    user = f"{url.username}:{url.password}" if password else url.username
    return f"{url.drivername}://{user}@{url.host}:{url.port}/optuna"


def ray_cli(cluster: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], capture_output=True, text=True, env=cluster["env"],
                          timeout=timeout)


def job_api(cluster: dict, path: str):
    """A GET of Ray's job REST API (the dashboard's), with the cluster's token."""
    request = urllib.request.Request(f"{cluster['dashboard']}{path}", headers={
        "Authorization": f"Bearer {cluster['token'].read_text().strip()}"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


@pytest.fixture(scope="module")
def job(tmp_path_factory, tracking):
    """The README's cluster search, submitted with `ray job submit` to a two-node cluster: waited for,
    its logs read through the job API. Yields what the tests check."""
    uri, db = tracking
    root = tmp_path_factory.mktemp("job")
    from sqlalchemy.engine import make_url
    password = make_url(db).password
    with ray_cluster(root / "cluster", cpus=(1, 1), dashboard=True, env={"PGPASSWORD": password}) as cluster:
        ids = node_ids(cluster)
        space = write_space(root, "two-nodes", n=4, steps=16)
        dashboard = cluster["dashboard"]
        submitted = ray_cli(cluster, "job", "submit", "--address", dashboard, "--submission-id", "two-nodes",
                            "--no-wait", "--", sys.executable, "-m", "search.run", str(space), "--address", "auto",
                            "--storage", str(root / "shared"), "--shared-storage", "--tracking-uri", uri,
                            "--optuna-storage", optuna_url(db, password=False))
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        # below pytest-timeout's 900 s, so a hung search fails here with its logs instead of silently
        deadline, status = time.monotonic() + 600, {}
        while time.monotonic() < deadline:
            status = job_api(cluster, "/api/jobs/two-nodes")
            if status["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            time.sleep(3)
        logs = job_api(cluster, "/api/jobs/two-nodes/logs")["logs"]
        assert status["status"] == "SUCCEEDED", f"{status}\n{logs[-5000:]}"
        page = urllib.request.urlopen(f"{dashboard}/", timeout=10).read().decode()
        try:
            urllib.request.urlopen(f"{dashboard}/api/jobs/", timeout=10)
            no_token = 200
        except urllib.error.HTTPError as e:
            no_token = e.code
        jobs = job_api(cluster, "/api/jobs/")
    yield {"uri": uri, "db": db, "ids": ids, "logs": logs, "page": page, "no_token": no_token, "jobs": jobs,
           "exp_dir": root / "shared" / "two-nodes", "root": root}


def test_a_search_submitted_as_a_ray_job_runs_on_two_nodes_and_tracks_to_postgresql(job):
    uri, db, exp_dir = job["uri"], job["db"], job["exp_dir"]

    # The job API ran it: its logs end with how to reach the study and the runs; the dashboard's page
    # is served, and its API answers only with the cluster's token.
    assert "<title>Ray Dashboard</title>" in job["page"]
    assert job["no_token"] == 401
    submitted = [(j["submission_id"], j["status"]) for j in job["jobs"] if j["type"] == "SUBMISSION"]
    assert submitted == [("two-nodes", "SUCCEEDED")]
    assert "best trial" in job["logs"] and "optuna study:" in job["logs"]
    assert re.search(rf"mlflow: {re.escape(uri)}/#/experiments/\d+\?workflowType=machine_learning", job["logs"])

    # Trials ran on both nodes (one CPU each, two trials at once).
    ran_on = {res["ray_node_id"] for d in exp_dir.glob("run_trial_*") for res in results(d)}
    assert ran_on == set(job["ids"].values()), (ran_on, job["ids"])

    # Every trial's run is in PostgreSQL: read through the server, and straight from the database.
    for tracking_uri in (uri, db):
        client, parents, kids = children(tracking_uri, "two-nodes")
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert len(kids) == 4 and len({k.data.tags["trial_id"] for k in kids}) == 4
        assert all(k.info.status == "FINISHED" for k in kids)
        assert {k.data.tags["ray_node_id"] for k in kids} == set(job["ids"].values())
        assert "best_test_nll_nats" in parents[0].data.metrics
    # Artifacts went through the server to the artifact store it serves.
    client, parents, kids = children(uri, "two-nodes")
    figs = {Path(a.path).name for a in client.list_artifacts(kids[0].info.run_id, "figures")}
    assert "samples.png" in figs
    assert {Path(a.path).name for a in client.list_artifacts(kids[0].info.run_id, "training")} == \
        {"metrics.jsonl", "kl_per_layer.png"}
    assert client.get_model_version_by_alias("two-nodes", "champion").source.startswith("models:/")

    # The Optuna study is in its PostgreSQL database, every trial COMPLETE with its value.
    import optuna
    study = optuna.load_study(study_name="two-nodes", storage=optuna_url(db, password=True))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    by_trial = {t.user_attrs["ray_trial_id"]: t.value for t in study.trials}
    assert by_trial == pytest.approx({k.data.tags["trial_id"]: k.data.metrics["val_elbo_nats"] for k in kids})
    assert not (exp_dir / "optuna.journal").exists()

    # best/ was exported, and loads.
    from matnet.checkpoint import load_checkpoint
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["trials"]["total"] == 4 and summary["best"]["evaluation"]["iwae_k"] == 4
    load_checkpoint(exp_dir / "best")


def test_the_mlflow_ui_shows_the_search_at_the_url_it_printed(job, tmp_path):
    """In a real browser (headless Chromium, a fresh profile), the URL the search gave its user opens
    the training-runs table with the search's parent run; expanded, its four child runs."""
    from tests.browser import Browser, chromium_path
    required(chromium_path)
    url = re.search(r"mlflow: (http://\S+)", job["logs"]).group(1)
    client, parents, kids = children(job["uri"], "two-nodes")
    link = "a[href$='/runs/{}']".format
    with Browser() as browser:
        browser.open(url)
        browser.wait_for(f"!!document.querySelector(\"{link(parents[0].info.run_id)}\")", what="the parent run")
        assert "Runs" in browser.evaluate("document.body.innerText")
        # The expander beside the parent's name shows its children.
        clicked = browser.click_button_beside(link(parents[0].info.run_id))
        assert clicked, "no expander beside the parent run"
        browser.wait_for(" && ".join(f"!!document.querySelector(\"{link(k.info.run_id)}\")" for k in kids),
                         what="the child runs")
        text = browser.evaluate("document.body.innerText")
        shot = browser.screenshot(tmp_path / "mlflow-runs.png")
    assert all(f"two-nodes/{k.data.tags['trial_id']}" in text for k in kids), text
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


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

    # The search said so in one line (which trial, that its node was lost, from which step it goes on),
    # and kept Ray's tracebacks off its output (they are in the trial's error.txt).
    printed = (tmp_path / "search.log").read_text()
    trial_id = victim.name.split("_")[2]
    told = [line for line in printed.splitlines() if line.startswith(f"trial {trial_id}: ")]
    # (Ray may not have marked the node dead yet when the driver sees the connection to it close.)
    assert len(told) == 1 and re.fullmatch(rf"trial {trial_id}: (its node was lost \(it stopped, or stopped "
                                           rf"answering\)|its worker stopped answering \(the connection to it "
                                           rf"closed: its node lost, or its process cut off\)); retried from its "
                                           rf"checkpoint at step \d+ \(restart 1 of \d+\)", told[0]), printed[-5000:]
    assert "Traceback" not in printed, printed[-5000:]

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


def walkthrough_commands() -> list[str]:
    """The commands of docs/cluster.md's walkthrough, as written there."""
    text = (ROOT / "docs" / "cluster.md").read_text()
    block = text.split("<!-- cluster-walkthrough:", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_docs_walkthrough_runs_as_written_on_two_nodes_of_this_machine(tmp_path):
    """docs/cluster.md's `ray start --head`, `ray start --address HEAD:6379` and search command, with
    HEAD = 127.0.0.1 and only what two nodes on ONE machine add: ports of their own, a test token,
    one CPU each, a small space instead of cifar10.yaml and a temporary folder for /shared."""
    import shlex

    from tests.servers import RayNode, alive_nodes, node_ports, ray_env, wait_for
    commands = walkthrough_commands()
    head = next(c for c in commands if "ray start --head" in c)
    worker = next(c for c in commands if "ray start --address" in c)
    search = next(c for c in commands if "search.run" in c)
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32))
    env = ray_env(token)
    port = str(free_port())
    temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")

    def args(command: str) -> list[str]:
        words = shlex.split(command.replace("HEAD:6379", f"127.0.0.1:{port}"))
        words = words[words.index("start") + 1:]
        return [port if w == "6379" else w for w in words]
    same_host = ["--node-ip-address", "127.0.0.1", "--num-cpus=1", "--num-gpus=0"]
    nodes = []
    try:
        nodes.append(RayNode("head", [*args(head), *same_host, f"--temp-dir={temp_dir}",
                                      f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}",
                                      *node_ports()[0]], env, tmp_path / "head.log"))
        wait_for(lambda: "Ray runtime started" in nodes[0].log.read_text(), 120, "head", nodes[0].proc, nodes[0].log)
        nodes.append(RayNode("worker", [*args(worker), *same_host, *node_ports()[0]], env, tmp_path / "worker.log"))
        wait_for(lambda: alive_nodes(f"127.0.0.1:{port}", env) == 2, 120, "worker", nodes[1].proc, nodes[1].log)
        space = write_space(tmp_path, "walk", n=2, steps=16)
        shared = tmp_path / "shared"
        words = shlex.split(search.replace("spaces/cifar10.yaml", str(space)).replace("/shared", str(shared))
                            .replace("http://127.0.0.1:5000", f"sqlite:///{tmp_path}/mlflow.db"))
        command = [sys.executable, *words[words.index("-m"):]]
        # `--address auto` finds the head through RAY_ADDRESS here: the nodes keep their files in a
        # temporary folder of their own, not /tmp/ray, where `auto` looks otherwise
        try:  # below pytest-timeout's 900 s, so a hung search fails with what it printed
            r = subprocess.run(command, cwd=ROOT, env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"},
                               capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired as e:
            printed = "".join(o.decode(errors="replace") if isinstance(o, bytes) else o
                              for o in (e.stdout, e.stderr) if o)
            pytest.fail(f"the walkthrough's search did not end in 600 s; it printed:\n{printed[-5000:]}")
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        records = json.loads((shared / "ray_results" / "walk" / "trials.json").read_text())["trials"]
        assert len(records) == 2 and all(rec["outcome"] == "completed" for rec in records.values())
    finally:
        for node in reversed(nodes):
            node.stop(signal.SIGTERM)
            node.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
