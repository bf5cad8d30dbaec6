"""The parts of scripts/gpu_check.py, each a function of its share of the time budget that returns its
figures as plain data (the check's docstring lists them, in order of priority)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from matnet.config import Config


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
