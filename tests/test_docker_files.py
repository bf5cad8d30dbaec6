"""No Docker engine runs here: check the cluster recipes as far as the tools allow."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def test_compose_file_parses_and_binds_ports_to_loopback():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "mlflow", "ray-head", "ray-worker"} <= services.keys()
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published, "the dashboard and MLflow must be reachable from the machine itself"
    for p in published:
        assert p.startswith("${BIND_ADDRESS:-127.0.0.1}:"), p
    # Every Ray node mounts the shared storage volume.
    for name in ("ray-head", "ray-worker"):
        assert any(v.startswith("shared:/shared") for v in services[name]["volumes"])
    # Every Ray node authenticates with one token read from a secret file (Ray 2.60 turns token auth
    # on for `ray start --head`; a worker with another token could not join).
    for name in ("ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_token"
        assert "ray_token" in services[name]["secrets"]
    assert compose["secrets"]["ray_token"]["file"] == "${RAY_TOKEN_FILE:-./secrets/ray_token}"
    # MLflow's backend store is PostgreSQL, with an artifact store it serves; it accepts the host
    # names the nodes and the user reach it by (MLflow 3.5+ rejects unknown Host headers).
    cmd = " ".join(services["mlflow"]["command"])
    assert "postgresql://" in cmd and "--serve-artifacts" in cmd and "mlflow:5000" in cmd
    # GPU workers ask for GPUs.
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_no_secret_is_committed():
    text = (DOCKER / "compose.yaml").read_text() + (DOCKER / "kuberay.yaml").read_text()
    assert not re.search(r"PASSWORD\s*[:=]\s*[\"']?\w", text.replace("POSTGRES_PASSWORD_FILE", "")), \
        "passwords come from a secret file, never from a committed one"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "docker/secrets/" in ignored and "docker/.env" in ignored


def test_image_installs_with_the_tested_setup_script():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "./scripts/setup.sh" in dockerfile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/setup.sh" in ci


def test_kuberay_manifest_parses():
    docs = list(yaml.safe_load_all((DOCKER / "kuberay.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert {"PersistentVolumeClaim", "RayCluster"} <= kinds.keys()
    assert kinds["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    cluster = kinds["RayCluster"]["spec"]
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    worker = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(m["mountPath"] == "/shared" for m in worker["volumeMounts"])
