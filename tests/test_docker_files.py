"""No Docker engine or Kubernetes runs here: check the cluster recipes as far as the tools allow.
They parse; every search command in them (and in the README) is one `python -m search.run` accepts;
the image installs with the script CI runs, its dependency layer before the code, without the test
tools; the compose file's health checks and GPU layout; the RayJob's cluster is the RayCluster's."""
import re
import shlex
import subprocess
import sys

import yaml

from tests.helpers import ROOT  # noqa: E402
DOCKER = ROOT / "docker"
RECIPES = ("compose.yaml", "kuberay.yaml", "rayjob.yaml", "Dockerfile")
DOCS = tuple(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "docs").glob("*.md")))


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def kube(name: str) -> dict:
    return {d["kind"]: d for d in yaml.safe_load_all((DOCKER / name).read_text())}


def test_compose_file_parses_and_binds_ports_to_loopback():
    services = compose()["services"]
    assert {"postgres", "mlflow", "ray-head", "ray-worker"} <= services.keys()
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published, "the dashboard and MLflow must be reachable from the machine itself"
    for p in published:
        assert p.startswith("${BIND_ADDRESS:-127.0.0.1}:"), p
    # Every Ray node mounts the shared storage volume, and the data at the image's data/.
    for name in ("ray-head", "ray-worker"):
        volumes = services[name]["volumes"]
        assert "shared:/shared" in volumes and "${DATA_DIR:-../data}:/opt/matnet-search/data:ro" in volumes
    # Every Ray node authenticates with one token read from a secret file (Ray 2.60 turns token auth
    # on for `ray start --head`; a worker with another token could not join).
    for name in ("ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_token"
        assert "ray_token" in services[name]["secrets"]
    assert compose()["secrets"]["ray_token"]["file"] == "${RAY_TOKEN_FILE:-./secrets/ray_token}"
    # MLflow's backend store is PostgreSQL, with an artifact store it serves; it accepts the host
    # names the nodes and the user reach it by (MLflow 3.5+ rejects unknown Host headers).
    cmd = " ".join(services["mlflow"]["command"])
    assert "postgresql://" in cmd and "--serve-artifacts" in cmd and "mlflow:5000" in cmd


def test_compose_waits_for_health_checks_of_mlflow_and_the_ray_head():
    services = compose()["services"]
    mlflow_check = " ".join(services["mlflow"]["healthcheck"]["test"])
    head_check = " ".join(services["ray-head"]["healthcheck"]["test"])
    assert "http://127.0.0.1:5000/health" in mlflow_check
    # Ray serves this one without its token (checked against a real head: tests/test_cluster.py reads
    # the dashboard without the token the same way).
    assert "http://127.0.0.1:8265/api/gcs_healthz" in head_check and "success" in head_check
    assert services["ray-head"]["depends_on"] == {"mlflow": {"condition": "service_healthy"}}
    assert services["ray-worker"]["depends_on"] == {"ray-head": {"condition": "service_healthy"}}
    assert services["mlflow"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("mlflow", "ray-head"):  # the checks' programs are in the image
        assert services[name]["healthcheck"]["test"][:2] == ["CMD", "python"]


def test_one_worker_node_holds_the_machines_gpus_and_nothing_scales_it():
    """Replicas of one service that asks for `count: all` would each get every GPU, and Ray would
    count every GPU once per replica: one worker node per machine, not scaled."""
    worker = compose()["services"]["ray-worker"]
    assert worker["deploy"]["replicas"] == 1
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    for text in [(DOCKER / "compose.yaml").read_text(), *[(ROOT / name).read_text() for name in ("README.md", *DOCS)]]:
        assert not re.search(r"--scale\s+ray-worker=", text)


def test_the_optuna_study_lives_in_its_own_database_on_mlflows_postgresql():
    services = compose()["services"]
    assert "./postgres-init.sql:/docker-entrypoint-initdb.d/optuna.sql:ro" in services["postgres"]["volumes"]
    assert "CREATE DATABASE optuna" in (DOCKER / "postgres-init.sql").read_text()
    url = services["ray-head"]["environment"]["OPTUNA_STORAGE"]
    assert url == "postgresql+psycopg://mlflow@postgres:5432/optuna"  # no password: ~/.pgpass has it
    head = " ".join(services["ray-head"]["command"])
    assert "~/.pgpass" in head and "umask 077" in head and "postgres_password" in services["ray-head"]["secrets"]


def search_commands() -> list[tuple[str, str]]:
    """Every `python -m search.run ...` in the recipes, the README and docs/, continuation lines joined."""
    found = []
    for name in (*[f"docker/{r}" for r in RECIPES], "README.md", *DOCS):
        text = (ROOT / name).read_text().replace("\\\n", " ")
        text = re.sub(r"\n#\s+", " ", text)  # commands in comments continue on the next comment line
        for match in re.finditer(r"python -m search\.run ([^\n`|;)]*)", text):  # ")": a command in brackets
            if "[" not in match.group(1):  # not the usage synopsis
                found.append((name, match.group(1)))
    return found


def test_every_search_command_in_the_recipes_and_the_readme_is_one_search_run_accepts():
    from matnet.config import ConfigError
    from search.run import parser
    commands = search_commands()
    assert len(commands) >= 8, commands
    cluster_commands = 0
    for where, command in commands:
        words = [w for w in shlex.split(command, comments=True) if w != "..."]
        if "--help" in words:
            continue  # parses by printing the help and exiting (tests/test_docs_commands.py runs it)
        if words and words[0] in ("SPACE.yaml", "SPACE"):
            words[0] = "space.yaml"
        try:
            args = parser().parse_args(words)
        except (SystemExit, ConfigError):  # search.run's parser raises ConfigError (one line) for a mistake
            raise AssertionError(f"{where}: python -m search.run {command}: not accepted") from None
        if args.address and args.storage and "://" not in args.storage:
            cluster_commands += 1
            assert args.shared_storage, f"{where}: {command}: a path on a cluster needs --shared-storage"
    assert cluster_commands >= 4  # compose, kuberay, rayjob, README


def test_jobs_run_the_images_code_without_uploading_a_working_dir():
    """A job runs in the head's folder, the image's /opt/matnet-search, where data/ is mounted; an
    uploaded --working-dir would run elsewhere, where the spaces' `data_dir: data` finds nothing."""
    for name in (*[f"docker/{r}" for r in RECIPES], "README.md", *DOCS):
        text = (ROOT / name).read_text().replace("\\\n", " ")
        assert not re.search(r"ray job submit[^\n]*--working-dir", text), name


def test_image_installs_with_the_tested_setup_script_dependencies_first_and_no_test_tools():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.replace("\\\n", " ").splitlines() if line.strip()
             and not line.lstrip().startswith("#")]
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY")]
    installs = [i for i, line in enumerate(lines) if line.startswith("RUN") and "./scripts/setup.sh" in line]
    assert len(installs) == 2 and "MATNET_DEPS_ONLY=1" in lines[installs[0]]
    # Before the dependency layer, only the files that say what it installs are copied.
    assert [lines[i] for i in copies if i < installs[0]] == [
        "COPY --chown=matnet:matnet pyproject.toml ./",
        "COPY --chown=matnet:matnet scripts/setup.sh scripts/requirements.py scripts/"]
    assert [lines[i] for i in copies if installs[0] < i < installs[1]] == ["COPY --chown=matnet:matnet . ."]
    assert "ENV MATNET_EXTRAS=cluster" in lines
    assert "scripts/setup.sh" in (ROOT / ".ci" / "run").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", "docker/secrets", "ray_results", "mlflow.db"} <= set(ignored)


def test_the_dependency_layer_holds_the_cluster_extra_and_no_test_tools():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "requirements.py"), "cluster"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert "ray[default]==2.60.*" in out and "torch==2.14.1" in out and "mlflow==3.17.*" in out
    assert not [r for r in out if r.startswith(("pytest", "scikit-image"))]
    test = subprocess.run([sys.executable, str(ROOT / "scripts" / "requirements.py"), "test"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert "ray[default]==2.60.*" in test and any(r.startswith("pytest") for r in test)  # CI: the cluster tests
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "requirements.py"), "nope"], capture_output=True,
                         text=True)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "no extra 'nope'" in bad.stderr


def test_ci_installs_the_browser_and_postgresql_the_cluster_tests_use():
    ci = (ROOT / ".ci" / "run").read_text()
    installs = " ".join(line for line in ci.splitlines() if "apt-get install" in line)
    assert "postgresql" in installs and "chromium" in installs


def test_no_secret_is_committed():
    text = "".join((DOCKER / name).read_text() for name in ("compose.yaml", "kuberay.yaml", "rayjob.yaml"))
    assert not re.search(r"PASSWORD\s*[:=]\s*[\"']?\w", text.replace("POSTGRES_PASSWORD_FILE", "")), \
        "passwords come from a secret file, never from a committed one"
    assert not re.search(r"postgresql[+\w]*://[^@\s/]*:[^@\s/]*@", text), "no password in a database URL"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "docker/secrets/" in ignored and "docker/.env" in ignored


def pods(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"], *[g["template"] for g in spec["workerGroupSpecs"]]]


def test_kuberay_cluster_and_job_mount_the_shared_storage_and_the_data():
    docs = kube("kuberay.yaml")
    assert {"PersistentVolumeClaim", "RayCluster"} <= docs.keys()
    claims = [d for d in yaml.safe_load_all((DOCKER / "kuberay.yaml").read_text()) if d["kind"] == "PersistentVolumeClaim"]
    assert {c["metadata"]["name"] for c in claims} == {"matnet-search-shared", "matnet-search-data"}
    assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims)
    assert all(c["metadata"]["labels"]["app.kubernetes.io/component"] == "storage" for c in claims)
    cluster = docs["RayCluster"]["spec"]
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    for pod in pods(cluster):
        container = pod["spec"]["containers"][0]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "/shared" in mounts and mounts["/opt/matnet-search/data"].get("readOnly") is True
        assert container["workingDir"] == "/opt/matnet-search"
        env = {e["name"] for e in container["env"]}
        assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= env
    head_env = {e["name"] for e in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"MLFLOW_TRACKING_URI", "OPTUNA_STORAGE", "PGPASSWORD"} <= head_env  # the search's driver runs there
    worker = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_the_rayjob_runs_one_search_on_the_same_pods_as_the_raycluster():
    from search.run import parser
    job = kube("rayjob.yaml")["RayJob"]["spec"]
    assert job["rayClusterSpec"] == kube("kuberay.yaml")["RayCluster"]["spec"]
    words = shlex.split(job["entrypoint"])
    assert words[:3] == ["python", "-m", "search.run"]
    args = parser().parse_args(words[3:])
    assert args.address == "auto" and args.storage.startswith("/shared/") and args.shared_storage
    assert job["shutdownAfterJobFinishes"] is True
    submitter = job["submitterPodTemplate"]["spec"]["containers"][0]
    assert {e["name"] for e in submitter["env"]} == {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}
