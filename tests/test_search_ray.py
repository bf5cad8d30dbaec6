"""Real searches on real Ray: a tiny MatNet on a slice of MNIST.

- a search runs its trials, ASHA stops some, Optuna records those as PRUNED, MLflow holds one parent
  and one child per trial, and best/ loads and evaluates;
- a search interrupted part way (SIGTERM to `python -m search.run`) and resumed with --resume does
  not run its finished trials again, completes, and leaves MLflow without duplicated or RUNNING runs.

Each test starts its own private Ray (search.run does) and shuts it down.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests import helpers
from tests.helpers import ROOT, mlflow_runs, optuna_study, small_space
from tests.test_search_provenance import Payload

# Only the points tried first take the `diverge` branch: a learning rate that makes training diverge,
# and a device no machine has (a valid config that fails where the trial starts: an errored trial).
SEARCH = {
    "train.lr": {"type": "float", "low": 1.0e-4, "high": 2.0e-2, "log": True},
    "diverge": {"type": "categorical", "choices": [False, True, "crash"], "when": {"train.lr": {"ge": 0.02}}},
    "huge_lr": {"key": "train.lr", "type": "categorical", "choices": [10000.0], "when": {"diverge": True}},
    "device": {"key": "train.device", "type": "categorical", "choices": ["cuda:999"], "when": {"diverge": "crash"},
               "otherwise": "cpu"},
    "model.meta_modules": {"type": "repeat", "count": {"type": "int", "low": 1, "high": 2}, "scales": [7, 14],
                           "each": {"modules": 1, "width": {"type": "categorical", "choices": [8, 16]},
                                    "latent_channels": 2}},
}


def write_space(tmp_path: Path, name: str, n: int, steps: int, scheduler: str, diverge_first: bool = False,
                **sections) -> Path:
    """n trials of `steps` steps reporting every 8; diverge_first: the first trial diverges, the second errors."""
    space = small_space(name, n=n, steps=steps, every=8, search=SEARCH,
                        scheduler={"type": scheduler, "grace_period": 1, "reduction_factor": 2},
                        sampler={"type": "tpe", "seed": 0, "n_startup_trials": 10},
                        mlflow={"sample_images": 16}, **sections)
    space["fixed"]["train"]["max_nonfinite_in_a_row"] = 2
    del space["fixed"]["train"]["device"]
    if diverge_first:
        space["points_to_evaluate"] = [{"train.lr": 0.02, "diverge": True}, {"train.lr": 0.02, "diverge": "crash"}]
    return helpers.write_space(tmp_path, name, space)


def optuna_trials(exp_dir: Path):
    return optuna_study(exp_dir).trials


def result_lines(exp_dir: Path) -> dict[str, int]:
    """trial id -> results it logged (lines of result.json)."""
    out = {}
    for d in exp_dir.glob("run_trial_*"):
        f = d / "result.json"
        tid = d.name.split("_")[2]
        out[tid] = len(f.read_text().splitlines()) if f.exists() else 0
    return out


def check_training_history(client, kid, exp_dir: Path, reports: int) -> None:
    """A trial's metrics history travels inside its checkpoints (so the search's storage has it) and
    reaches its MLflow run, whole: one line per report, up to the trial's end, with Figure 4 drawn from
    it by the driver (the trial does not redraw it at every report)."""
    tid = kid.data.tags["trial_id"]
    checkpoints = sorted(next(exp_dir.glob(f"run_trial_{tid}_*")).glob("checkpoint_*"))
    assert checkpoints, tid
    for ckpt in checkpoints:
        step = json.loads((ckpt / "meta.json").read_text())["step"]
        history = [json.loads(line) for line in (ckpt / "metrics.jsonl").read_text().splitlines()]
        assert history[-1]["step"] == step and not (ckpt / "kl_per_layer.png").exists()
    logged = {Path(a.path).name for a in client.list_artifacts(kid.info.run_id, "training")}
    assert logged == {"metrics.jsonl", "kl_per_layer.png"}, logged
    text = Path(client.download_artifacts(kid.info.run_id, "training/metrics.jsonl")).read_text()
    assert [json.loads(line)["step"] for line in text.splitlines()] == [8 * (i + 1) for i in range(reports)]


def check_run_context(client, parent, kids) -> None:
    """MLflow's context tags (who ran it, from what, which commit), the data set as the runs' input,
    and the experiment's kind."""
    for run in (parent, *kids):
        tags = run.data.tags
        assert tags["mlflow.user"] and tags["mlflow.source.name"] == "search.run"
        assert tags["mlflow.source.type"] == "LOCAL"
        if (ROOT / ".git").exists():
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
            assert tags["mlflow.source.git.commit"] == head.strip()
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["mnist (dynamic binarization)"], inputs
        assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
        assert json.loads(inputs[0].dataset.profile)["train_limit"] == 500
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def check_study_on_the_parent(client, parent, exp_dir: Path, complete: dict) -> None:
    """Optuna's parameter importances (over the trials that trained their whole budget) as metrics
    and a PNG, and the parallel-coordinates PNG, on the parent run and in figures/."""
    summary = json.loads((exp_dir / "summary.json").read_text())
    if len(complete) < 2:
        assert "too few to compare" in summary["param_importances"]
        return
    importances = summary["param_importances"]
    assert "train.lr" in importances and sum(importances.values()) == pytest.approx(1.0)
    metrics = client.get_run(parent.info.run_id).data.metrics
    assert {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("param_importance/")} == \
        pytest.approx(importances)
    assert {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "study")} == \
        {"param_importances.png", "parallel_coordinates.png"}
    assert (exp_dir / "figures" / "parallel_coordinates.png").stat().st_size > 10_000


def check_registered_model(tmp_path: Path, uri: str, name: str, parent) -> None:
    """The best checkpoint is an MLflow model registered as `name` with the alias champion; it
    loads without unpickling (a model from code over the safetensors folder) and scores images; the
    matnet commands open models:/ and runs:/ URIs of it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from tests.helpers import resolver_env
    client = MlflowClient(uri)
    champion = client.get_model_version_by_alias(name, "champion")
    summary = json.loads((tmp_path / "results" / name / "summary.json").read_text())
    assert summary["mlflow"]["champion_uri"] == f"models:/{name}@champion"
    assert summary["mlflow"]["version"] == str(champion.version)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion", tracking_uri=uri))
    mlmodel = (local / "MLmodel").read_text()
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel and "signature:" in mlmodel
    assert not list(local.rglob("*.pkl")) and (local / "artifacts" / "checkpoint" / "model.safetensors").is_file()
    assert not (local / "artifacts" / "checkpoint" / "train_state.pt").exists()
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    from matnet.data import load_split
    from matnet.checkpoint import load_checkpoint
    _, cfg, _ = load_checkpoint(tmp_path / "results" / name / "best")
    images = load_split(cfg.data, "test").batch(__import__("torch").arange(6)).numpy()
    scores = model.predict(images, params={"iwae_k": 3})
    assert list(scores.columns) == ["elbo_nats", "nll_nats"] and len(scores) == 6
    assert ((scores.nll_nats > 0) & (scores.nll_nats <= scores.elbo_nats + 1e-3)).all()

    env = {**os.environ, **resolver_env(tmp_path), "MLFLOW_TRACKING_URI": uri}
    for checkpoint in (f"models:/{name}@champion", f"runs:/{parent.info.run_id}/model"):
        r = subprocess.run([sys.executable, "-m", "matnet.evaluate", checkpoint, "--samples", "2", "--limit", "8",
                            "--json", str(tmp_path / "eval.json")], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads((tmp_path / "eval.json").read_text())["n_images"] == 8
    r = subprocess.run([sys.executable, "-m", "matnet.sample", f"models:/{name}@nosuchalias", "--out",
                        str(tmp_path / "s.png")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "models:/asha@nosuchalias" in r.stderr, r.stderr


def test_search_asha_prunes_optuna_knows_mlflow_logs_and_best_evaluates(tmp_path, monkeypatch, capsys):
    from search import run

    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path, "asha", n=7, steps=32, scheduler="asha", diverge_first=True)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = tmp_path / "results"
    t0 = time.monotonic()
    # One trial errored (it raised beyond max_failures): the search says so by its exit status, and
    # still exports the best of the others.
    assert run.main([str(space), "--storage", str(storage), "--tracking-uri", uri]) == run.ERRORED_TRIALS_EXIT == 3
    print(f"search of 7 trials: {time.monotonic() - t0:.0f} s")
    printed = capsys.readouterr()
    assert "1 of 7 trials errored" in printed.err and "cuda:999" in printed.err
    exp_dir = storage / "asha"
    # The trial that raised: a line when it was retried, and its end with the cause and the traceback's file.
    errored = next(t.user_attrs["ray_trial_id"] for t in optuna_trials(exp_dir) if t.user_attrs["status"] == "error")
    assert re.search(rf"^trial {errored}: it raised .*cuda:999.*; retried from the start \(restart 1 of 1\)$",
                     printed.out, re.M), printed.out
    assert re.search(rf"^\[\d/7\] trial {errored} error at step -: val_elbo_nats -; it raised .*cuda:999.*; "
                     rf"traceback in {exp_dir}/run_trial_{errored}_\S+/error.txt$", printed.out, re.M), printed.out

    # Optuna: every trial told; the ones ASHA stopped are PRUNED at the step they reached; the
    # one whose loss went non-finite and the one that raised FAILED (and the search went on).
    trials = optuna_trials(exp_dir)
    assert len(trials) == 7
    pruned = {t.user_attrs["ray_trial_id"]: t for t in trials if t.state == TrialState.PRUNED}
    complete = {t.user_attrs["ray_trial_id"]: t for t in trials if t.state == TrialState.COMPLETE}
    failed = {t.user_attrs["ray_trial_id"]: t for t in trials if t.state == TrialState.FAIL}
    assert trials[0].params["diverge"] is True and trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["status"] == "diverged"
    assert trials[1].params["diverge"] == "crash" and trials[1].state == TrialState.FAIL
    assert trials[1].user_attrs["status"] == "error" and len(failed) == 2
    diverged_id, errored_id = trials[0].user_attrs["ray_trial_id"], trials[1].user_attrs["ray_trial_id"]
    assert pruned, "ASHA stopped no trial"
    assert complete and len(pruned) + len(complete) == 5
    lines = result_lines(exp_dir)
    for tid, t in pruned.items():
        assert t.last_step < 32 and t.last_step == 8 * lines[tid]  # the step it reached
        assert t.value == t.intermediate_values[t.last_step]
    for tid, t in complete.items():
        assert t.last_step == 32 and lines[tid] == 4
    # Tune's result.json and progress.csv per trial, not its TensorBoard event files (search/tune/tuner.py).
    reported = [d for d in exp_dir.glob("run_trial_*") if lines[d.name.split("_")[2]]]
    assert len(reported) >= 5 and all((d / "progress.csv").is_file() for d in reported)
    assert not list(exp_dir.rglob("events.out.tfevents*"))
    assert "optuna.load_study(study_name=\"asha\"" in printed.out

    # MLflow: one parent, one child per trial, statuses agree with Optuna.
    client, parents, kids = mlflow_runs(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert len(kids) == 7 and len({k.data.tags["trial_id"] for k in kids}) == 7
    assert all(k.data.tags["mlflow.parentRunId"] == parent.info.run_id for k in kids)
    bad = [k for k in kids if k.data.tags["trial_id"] == diverged_id][0]
    assert bad.info.status == "FAILED" and bad.data.tags["status"] == "diverged"
    assert "diverged" in bad.data.tags["error"]
    crashed = [k for k in kids if k.data.tags["trial_id"] == errored_id][0]
    assert crashed.info.status == "FAILED" and crashed.data.tags["status"] == "error"
    assert "cuda:999" in crashed.data.tags["error"]
    kids = [k for k in kids if k is not bad and k is not crashed]
    assert all(k.info.status == "FINISHED" for k in kids)
    assert {k.data.tags["trial_id"] for k in kids if k.data.tags["status"] == "pruned"} == set(pruned)
    for k in kids:
        tid = k.data.tags["trial_id"]
        hist = client.get_metric_history(k.info.run_id, "val_elbo_nats")
        assert len(hist) == lines[tid] and [h.step for h in hist] == [8 * (i + 1) for i in range(lines[tid])]
        # each searched parameter once, the fixed ones in config.json; the step is each value's, not a metric
        assert set(k.data.params) == set(k.data.tags["searched_params"].split(",")) and "train.lr" in k.data.params
        assert "step" not in k.data.metrics
        (tmp_path / tid).mkdir()
        config = json.loads(Path(client.download_artifacts(k.info.run_id, "config.json", str(tmp_path / tid))).read_text())
        assert config["train"]["lr"] == pytest.approx(float(k.data.params["train.lr"]))
        # per-layer KLs under one name, which MLflow's charts view groups
        assert "val_kl/0" in k.data.metrics and not [m for m in k.data.metrics if re.fullmatch(r"val_kl_\d+", m)]
        figs = {Path(a.path).name for a in client.list_artifacts(k.info.run_id, "figures")}
        assert {"samples.png", "kl_per_layer.json", "kl_per_layer.png"} <= figs
        check_training_history(client, k, exp_dir, lines[tid])
    assert {"best", "summary.json"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "best_test_nll_nats" in parent.data.metrics
    check_run_context(client, parent, [*kids, bad, crashed])
    check_study_on_the_parent(client, parent, exp_dir, complete)
    check_registered_model(tmp_path, uri, "asha", parent)

    # best/ is a matnet checkpoint that loads and evaluates; summary.json describes it.
    summary = json.loads((exp_dir / "summary.json").read_text())
    assert summary["best"]["evaluation"]["iwae_k"] == 4 and summary["trials"]["total"] == 7
    assert summary["trials"]["diverged"] == 1 and summary["trials"]["error"] == 1
    assert summary["best"]["trial_id"] in complete or summary["best"]["trial_id"] in pruned
    from matnet.checkpoint import load_checkpoint
    from matnet.data import load_split
    from matnet.evaluate import evaluate_iwae
    model, cfg, meta = load_checkpoint(exp_dir / "best")
    r = evaluate_iwae(model, load_split(cfg.data, "test"), k=3, limit=10, progress=False)
    assert 0 < r["nll_nats"] < 1000 and r["nll_nats"] <= r["elbo_nats"] + 1e-6
    assert meta["metrics"]["val_elbo_nats"] == pytest.approx(summary["best"]["best_val_elbo_nats"])

    # search.export redoes it from the folder alone, reading only the project's own plain files:
    # pickles planted in Tune's state never run (search/provenance.py guards --resume).
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(marker))
    for state in [*exp_dir.glob("*.pkl")]:
        state.write_bytes(payload)
    for state in exp_dir.glob("experiment_state-*.json"):
        entry = {"_type": "CLOUDPICKLE_FALLBACK", "value": payload.hex()}
        state.write_text(json.dumps({**json.loads(state.read_text()), "planted": entry}))
    out = subprocess.run([sys.executable, "-m", "search.export", str(exp_dir), "--samples", "2", "--limit", "10"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads((exp_dir / "summary.json").read_text())["best"]["evaluation"]["iwae_k"] == 2
    assert not marker.exists()
    r = subprocess.run([sys.executable, "-m", "search.run", str(space), "--storage", str(storage), "--tracking-uri",
                        uri, "--resume"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and "not the file a search run with this machine's key" in r.stderr, r.stderr[-2000:]
    assert not marker.exists()
    _, parents, kids = mlflow_runs(uri)
    assert len(parents) == 1 and len(kids) == 7


def _wait_finished_trials(exp_dir: Path, n: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"search ended early:\n{proc.stdout.read()[-3000:]}")
        # The study, not MLflow: a trial's MLflow run ends a few seconds after the trial (its figures are
        # drawn off Tune's loop), by which time the other trials may have finished too.
        try:
            if sum(t.state == TrialState.COMPLETE for t in optuna_trials(exp_dir)) >= n:
                return
        except Exception:  # the journal is not there yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} trials finished in {timeout} s")


def test_interrupted_search_resumes_without_rerunning_finished_trials(tmp_path):
    # Both tracking back-ends on: neither logs a trial or an iteration twice through the resume.
    space = write_space(tmp_path, "resume", n=4, steps=48, scheduler="none", tensorboard={"enabled": True})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = tmp_path / "results"
    exp_dir = storage / "resume"
    # Started with a relative tracking URI; resumed below from another folder: the search keeps it absolute.
    cmd = [sys.executable, "-m", "search.run", str(space), "--storage", str(storage), "--tracking-uri",
           "sqlite:///mlflow.db"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_finished_trials(exp_dir, 2, proc, timeout=240)
        # The study, read while the search runs: the finished trials are COMPLETE with their values.
        during = {t.number: t for t in optuna_trials(exp_dir)}
        assert sum(t.state == TrialState.COMPLETE and t.value > 0 for t in during.values()) >= 2, during
        time.sleep(2.0)  # the next trials are under way
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-3000:]
    assert "--resume" in out

    client, parents, kids = mlflow_runs(uri)
    assert len(parents) == 1 and parents[0].info.status == "KILLED"
    assert not [r for r in parents + kids if r.info.status == "RUNNING"]
    finished = {k.data.tags["trial_id"]: k for k in kids if k.info.status == "FINISHED"}
    assert len(finished) >= 2
    assert len(finished) < 4, "the search was not interrupted part way"
    before = result_lines(exp_dir)
    assert all(before[t] == 6 for t in finished)

    assert json.loads((exp_dir / "search.json").read_text())["tracking"]["mlflow"]["tracking_uri"] == uri
    (tmp_path / "elsewhere").mkdir()
    r = subprocess.run(cmd[:-2] + ["--resume"], cwd=tmp_path / "elsewhere", env=env, capture_output=True, text=True,
                       timeout=400)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    # Only the platform's own lines: not Tune's configuration box and TensorBoard hint, and in a log (no
    # terminal) no progress bar of the export's Ray task, whose every redraw would be a line.
    printed = out + r.stdout + r.stderr
    assert "To visualize your results with TensorBoard" not in printed  # Tune's hint: its event files are off
    assert "Configuration for experiment" not in printed
    assert "IWAE k=" not in printed, printed[-3000:]
    assert "WARNING" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]  # the resumed run is a correct one

    client, parents2, kids2 = mlflow_runs(uri)
    assert len(parents2) == 1 and parents2[0].info.run_id == parents[0].info.run_id
    assert parents2[0].info.status == "FINISHED"
    assert len(kids2) == 4 and len({k.data.tags["trial_id"] for k in kids2}) == 4
    assert all(k.info.status == "FINISHED" for k in kids2)
    after = result_lines(exp_dir)
    # A trial cut off resumes from the last checkpoint Tune had registered; Tune's result.json is
    # append-only, so it may hold a step done again after that one (MLflow does not: checked below).
    assert len(after) == 4 and all(v >= 6 for v in after.values())
    for tid, k in finished.items():  # finished trials were not run again
        assert after[tid] == before[tid]
        k2 = next(x for x in kids2 if x.data.tags["trial_id"] == tid)
        assert k2.info.end_time == k.info.end_time
    # The study went on through the resume: the same four trials (none asked twice), all COMPLETE,
    # each with the intermediate values of its six reports, once.
    trials = optuna_trials(exp_dir)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert {t.number: t.value for t in trials if t.number in during and during[t.number].state == TrialState.COMPLETE} \
        == {n: t.value for n, t in during.items() if t.state == TrialState.COMPLETE}
    assert all(sorted(t.intermediate_values) == [8, 16, 24, 32, 40, 48] for t in trials)
    assert {t.user_attrs["ray_trial_id"] for t in trials} == {k.data.tags["trial_id"] for k in kids2}
    for k in kids2:  # no iteration logged twice, even for the trials that were cut off
        hist = client.get_metric_history(k.info.run_id, "training_iteration")
        assert sorted(h.value for h in hist) == [1, 2, 3, 4, 5, 6]
    assert (exp_dir / "summary.json").exists() and (exp_dir / "best" / "model.safetensors").exists()
    # TensorBoard: a run per trial, each iteration once, one HParams session start and end each
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from search.tracking.trial_events import logged
    logdir = exp_dir / "tensorboard"
    assert sorted(p.name for p in logdir.iterdir() if p.is_dir()) == sorted(k.data.tags["trial_id"] for k in kids2)
    for run in (p for p in logdir.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        assert [s.value for s in acc.Scalars("training_iteration")] == [1, 2, 3, 4, 5, 6], run.name
        assert logged(run) == (6, True, True)
    assert f"tensorboard: tensorboard --logdir {logdir}" in r.stdout


def test_a_killed_trial_worker_restarts_from_its_last_checkpoint(tmp_path):
    space = write_space(tmp_path, "crash", n=1, steps=64, scheduler="none")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = tmp_path / "results"
    cmd = [sys.executable, "-m", "search.run", str(space), "--storage", str(storage), "--tracking-uri", uri,
           "--no-export"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        pid = None
        while time.monotonic() < deadline and pid is None:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            for f in (storage / "crash").glob("run_trial_*/result.json"):
                lines = f.read_text().splitlines()
                if len(lines) >= 3:
                    pid = json.loads(lines[-1])["pid"]
            time.sleep(0.5)
        assert pid is not None, "the trial did not report"
        os.kill(pid, signal.SIGKILL)  # the worker dies mid-trial
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    # One line from the platform says which trial, what probably happened and that it was retried;
    # Ray's notice, Tune's ERROR line and the ActorDiedError traceback stay in the trial's error.txt.
    told = [line for line in out.splitlines() if "worker process died" in line]
    assert len(told) == 1 and re.fullmatch(
        r"trial \w+: its worker process died \(killed: the kernel's OOM killer, a signal, or a crash\); retried "
        r"from its checkpoint at step \d+ \(restart 1 of 1\)", told[0]), out[-3000:]
    assert "Traceback" not in out and "ERROR" not in out and "A worker died" not in out, out[-3000:]
    assert "ActorDiedError" in next((storage / "crash").glob("run_trial_*/error.txt")).read_text() or \
        "worker process has died" in next((storage / "crash").glob("run_trial_*/error.txt")).read_text()

    results = [json.loads(line) for f in (storage / "crash").glob("run_trial_*/result.json")
               for line in f.read_text().splitlines()]
    iterations = [r["training_iteration"] for r in results]
    assert iterations[-1] == 8 and len({r["pid"] for r in results}) == 2  # finished, in a second worker
    steps = [r["step"] for r in results]
    restarted_at = next(i for i, r in enumerate(results) if r["pid"] != results[0]["pid"])
    # The new worker went on from the last checkpoint: its first step follows one already reported.
    assert steps[restarted_at] - 8 in steps[:restarted_at]
    _, parents, kids = mlflow_runs(uri)
    assert len(kids) == 1 and kids[0].info.status == "FINISHED" and kids[0].data.tags["status"] == "completed"
    assert kids[0].data.tags.get("restarts") == "1"


def test_a_search_over_conditional_matnets_logs_imputations_and_exports_the_unknown_pixel_bound(tmp_path, monkeypatch):
    """data.task: impute in a space searches conditional MatNets (issue: imputation): trials train on
    quadrant masks, MLflow gets an imputation grid per trial (a conditional model has nothing to
    sample unconditionally), and best/ is scored on its unknown pixels (eq. 6)."""
    from search import run

    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path, "impute", n=2, steps=8, scheduler="none",
                        data={"dataset": "mnist", "task": "impute", "mask": "quadrants", "train_limit": 500,
                              "eval_limit": 100})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert run.main([str(space), "--storage", str(tmp_path / "results"), "--tracking-uri", uri]) == 0
    client, parents, kids = mlflow_runs(uri)
    assert len(parents) == 1 and len(kids) == 2 and all(k.info.status == "FINISHED" for k in kids)
    for k in kids:
        figs = {Path(a.path).name for a in client.list_artifacts(k.info.run_id, "figures")}
        assert "imputations.png" in figs and "samples.png" not in figs, figs
    summary = json.loads((tmp_path / "results" / "impute" / "summary.json").read_text())
    evaluation = summary["best"]["evaluation"]
    assert evaluation["bound_on"].startswith("unknown pixels") and evaluation["mask"] == "quadrants: 1-3 of 4 visible"
    assert 0 < evaluation["nll_nats"] <= evaluation["elbo_nats"] + 1e-6
    from matnet.build import is_conditional
    from matnet.checkpoint import load_checkpoint
    assert is_conditional(load_checkpoint(tmp_path / "results" / "impute" / "best")[0])


LISTENERS = """
import json, os, psutil, ray
from search.tune.cluster import init_ray
from search.space import load_space
init_ray(None, load_space("spaces/quickstart.yaml"))
ray.get(ray.remote(lambda: 1).remote())  # a worker process too
me = psutil.Process()
addrs = [c.laddr.ip for p in [me, *me.children(recursive=True)] for c in p.net_connections(kind="tcp")
         if c.status == psutil.CONN_LISTEN]
print(json.dumps({"listen": addrs, "node_ip": ray.util.get_node_ip_address()}))
ray.shutdown()
"""


def test_a_private_local_ray_listens_on_loopback_only():
    """Safe by default: without --address, search.run's Ray (GCS, raylet, workers) is reachable from
    this machine only; Ray's default would listen on every interface."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    r = subprocess.run([sys.executable, "-c", LISTENERS], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert found["node_ip"] == "127.0.0.1"
    assert len(found["listen"]) >= 3 and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in found["listen"]), found
