"""Where a search runs and writes: a private local Ray (loopback only) or an existing cluster,
and storage that every node of it can reach."""
from __future__ import annotations

import os
from pathlib import Path

from ..space import Space
from ..store import storage
from ..store.errors import RunError
from .compat import quiet_token_notice, quiet_trial_failures, ray_loopback_only

def cluster_address(given: str | None) -> str | None:
    """The Ray cluster a search runs on: --address, else RAY_ADDRESS, else none (a private local Ray)."""
    return given or os.environ.get("RAY_ADDRESS") or None


def check_cluster_storage(path: str, address: str | None, shared_confirmed: bool) -> None:
    """After connecting: a local (non-URI) path is fine on a cluster only if every node is this
    machine, or the user confirmed it is mounted on every node."""
    if address is None or storage.is_uri(path) or shared_confirmed:
        return
    import ray
    me = ray.util.get_node_ip_address()
    others = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")} - {me})
    if others or address.startswith("ray://"):
        where = f"nodes {', '.join(others[:3])}" if others else "the Ray client's cluster"
        raise RunError(f"--storage {path} is a path on this machine, but {where} cannot be assumed to see it; "
                       f"use shared storage (s3://..., gs://...), or pass --shared-storage if {path} is mounted "
                       f"at the same path on every node")


def init_ray(address: str | None, space: Space, num_gpus: int | None = None) -> None:
    """Safe by default: without an address, a private Ray sized to this machine that listens on
    127.0.0.1 only (search/tune/compat.py says how), offering `num_gpus` GPUs to trials (default: the
    GPUs torch sees)."""
    if address is None:
        ray_loopback_only()
    import ray
    resources = space.settings.experiment.resources
    if address is not None:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=True, logging_level="WARNING", logging_config=quiet_workers())
        except ConnectionError as e:
            raise RunError(f"cannot connect to the Ray cluster at {address} ({str(e).splitlines()[0]}); is it "
                           f"running? (ray status)") from None
        quiet_trial_failures()
        return
    num_cpus = os.cpu_count() or 1
    num_gpus = local_gpus() if num_gpus is None else num_gpus
    if resources.cpu > num_cpus:
        raise RunError(f"{space.path}: experiment.resources.cpu is {resources.cpu:g} but this machine has {num_cpus} "
                       f"CPUs; lower it")
    if resources.gpu > num_gpus:
        raise RunError(f"{space.path}: experiment.resources.gpu is {resources.gpu:g} but this machine has {num_gpus} "
                       f"GPUs; set resources.gpu: 0 (and train.device: cpu) or run on a GPU machine / cluster")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    quiet_token_notice()
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
             log_to_driver=True, configure_logging=True, logging_level="WARNING", logging_config=quiet_workers())
    quiet_trial_failures()


def quiet_workers():
    """Ray's own INFO lines in trial processes (a restore from a checkpoint, each checkpoint persisted)
    are forwarded to the driver's terminal; warnings and errors still are."""
    import ray
    return ray.LoggingConfig(encoding="TEXT", log_level="WARNING")


ANSWER_WITHIN_S = 5.0


def check_reachable(address: str) -> None:
    """HOST:PORT and ray://HOST:PORT must accept a connection within seconds: Ray itself retries an
    address where nothing listens for a minute and more before it gives up."""
    import socket
    if address == "auto":
        return  # Ray finds the local cluster from its own files, and says at once when there is none
    host_port = address.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--address {address}: give auto, HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:10001")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=ANSWER_WITHIN_S):
            pass
    except OSError as e:
        raise RunError(f"--address {address}: no Ray cluster answers there within {ANSWER_WITHIN_S:g} s "
                       f"({e.strerror or type(e).__name__}); start it (ray start --head) or check the host and "
                       f"port (ray status on the head node prints the address)") from None


def local_gpus() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA: no GPUs
        return 0
