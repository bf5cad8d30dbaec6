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

    import sys

    cpus = evaluation_cpus(resources.cpu)
    # A bar that redraws in place on a terminal; in a log (a file, `ray job logs`) Ray's forwarded bar
    # would print every redraw as a new segment: there the lines before and after the task say it all.
    bar = sys.stdout.isatty()

    def task() -> tuple[dict[str, Any], Any, dict[str, Any]]:
        import torch
        torch.set_num_threads(max(1, int(cpus)))
        from ray.experimental.tqdm_ray import tqdm as ray_tqdm
        with storage.local_copy(best) as local:
            return evaluate_best(local, export, k, limit, device, data_dir, progress=bar,
                                 make_bar=ray_tqdm if bar else None)  # Ray's bar has no `disable`

    print(f"export: IWAE bound (k={k}) of the best checkpoint on {limit or 'all'} {export.split} images, "
          f"{cpus:g} CPUs" + (f" + {resources.gpu:g} GPU" if resources.gpu else ""), flush=True)

    remote = ray.remote(num_cpus=cpus, num_gpus=resources.gpu, max_retries=0)(task)
    return ray.get(remote.remote())


def evaluation_cpus(trial_cpus: float) -> float:
    """The CPUs the export's IWAE asks for: a whole node's (the search has ended: its trials' CPUs are
    free; a trial's share, one CPU on a laptop, would leave the others idle), at least a trial's."""
    import ray
    largest = max((float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=trial_cpus)
    free = float(ray.available_resources().get("CPU", largest))
    return max(trial_cpus, min(largest, free))
