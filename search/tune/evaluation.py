"""The export's evaluation of the best checkpoint: the IWAE bound (k samples per image) on the space's
export split, in this process or as a Ray task with a trial's resources."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..store import storage


def evaluate_best(checkpoint: Path, export: Any, k: int, limit: int, device: str, data_dir: str | None,
                  progress: bool, make_bar: Any = None) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """The IWAE bound (k samples per image) of the checkpoint on export.split: (evaluation, its
    config, its meta.json)."""
    from matnet.checkpoint import load_checkpoint
    from matnet.data import load_split
    from matnet.device import resolve_device
    from matnet.evaluate import evaluate_iwae

    dev = resolve_device(device)
    model, cfg, meta = load_checkpoint(checkpoint, dev)
    if data_dir:
        cfg = cfg.override("data.data_dir", data_dir)
    split = load_split(cfg.data, export.split)
    started = time.monotonic()
    evaluation = evaluate_iwae(model, split, k, limit, export.batch_size, dev, export.rows_per_pass, 0,
                               cfg.train.amp, progress=progress, make_bar=make_bar)
    evaluation["device"] = str(dev)
    evaluation["seconds"] = round(time.monotonic() - started, 2)
    evaluation["split"] = export.split
    return evaluation, cfg, meta


def evaluate_on_ray(best: str, export: Any, k: int, limit: int, device: str, data_dir: str | None,
                    resources: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """evaluate_best as a Ray task with a trial's resources: the checkpoint is read from the search's
    storage (shared on a cluster), and the progress bar is Ray's, shown by the driver."""
    import ray

    def task() -> tuple[dict[str, Any], Any, dict[str, Any]]:
        from ray.experimental.tqdm_ray import tqdm as ray_tqdm
        with storage.local_copy(best) as local:
            return evaluate_best(local, export, k, limit, device, data_dir, progress=True, make_bar=ray_tqdm)

    remote = ray.remote(num_cpus=resources.cpu, num_gpus=resources.gpu, max_retries=0)(task)
    return ray.get(remote.remote())
