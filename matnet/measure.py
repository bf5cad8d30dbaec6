"""Measurements of training and evaluation speed on a device, shared by the benchmarks
(`python -m matnet.bench`) and the prepared GPU check (scripts/gpu_check.py): the training loop's
images per second, the bare step's kernels and host launches, the IWAE's samples per second, the
largest batch that fits, the time to sample."""
from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from typing import Any, Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import Config
from .data import load_split
from .evaluate import evaluate_iwae
from .model import MatNet


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """The device's dense matrix-multiply rate, measured now: the yardstick for model FLOP/s."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
        if reps % 10 == 0:
            sync(device)
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)

def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

def loop_throughput(config: Config, device: torch.device, steps: int, batch: int = 100,
                    overrides: dict[str, Any] | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """End-to-end training speed through the real loop (matnet.train.train: batch gather and
    binarization on the device, the compiled or eager step, the loop's bookkeeping), on MNIST. The
    clock starts after the first update (compilation, autotuning) and stops before the evaluation."""
    from .train import train
    sets = {"train.device": str(device), "train.batch_size": batch, "train.max_steps": steps + 1,
            "train.eval_every_steps": steps + 1, "train.max_minutes": 0.0, "data.eval_limit": 100,
            **(overrides or {})}
    if data_dir:
        sets["data.data_dir"] = data_dir
    cfg = config.with_overrides(sets)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    m = train(cfg, None, progress=False)
    return {"batch_size": batch, "steps": steps, "images_per_s": m["images_per_s"],
            "step_ms": 1e3 * batch / max(m["images_per_s"], 1e-9), "compiled": m["compiled"],
            "first_step_seconds": m.get("first_step_seconds"), "amp_bf16": cfg.train.amp and device.type == "cuda",
            "skipped_steps": m["skipped_steps"], "peak_memory_mb": peak_memory_mb(device)}

def launches(prof) -> dict[str, int]:
    """Kernel executions seen by the profiler and host-side launch calls (a CUDA graph replay is one
    launch of many kernels)."""
    names = [e.name for e in prof.events()]
    kernels = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    host = sum(1 for n in names if n in ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel",
                                         "cuLaunchKernelEx", "cudaGraphLaunch"))
    graphs = sum(1 for n in names if n == "cudaGraphLaunch")
    ops = sum(1 for n in names if n.startswith("aten::"))
    return {"kernels": kernels, "launch_calls": host, "graph_launches": graphs, "aten_ops": ops}

@contextlib.contextmanager
def quiet_profiler() -> Iterator[None]:
    """torch.profiler's C++ side (kineto) writes its own lines to the process's stderr at every profile
    (USDT profiler_start / profiler_stop, and on a machine without a GPU an ERROR that it found none),
    which a benchmark's output should not carry: its stderr goes to /dev/null while it profiles. An
    error of the profiled steps still reaches the user, as the exception it raises."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def step_profile(config: Config, device: torch.device, batch: int = 100, steps: int = 10,
                 compile: bool = False, amp: bool = False, profile_steps: int = 3) -> dict[str, Any]:
    """The bare training step (step.TrainStep, the same one train() uses) on a fixed batch: time per
    step, kernels per step (torch.profiler), model FLOPs per step and peak memory."""
    from torch.profiler import ProfilerActivity, profile

    from .step import TrainStep, make_optimizer
    model = MatNet(config.model, (1, 28, 28)).to(device)
    opt = make_optimizer(model, config.train.betas, 1e-4, config.train.weight_decay)
    step = TrainStep(model, opt, device, amp, compile, config.train.grad_clip)
    x = torch.bernoulli(torch.full((batch, 1, 28, 28), 0.13, device=device))
    step(x, 0, 1.0, 1e-4)  # compiles when asked
    first = step.first_step_seconds
    flops = None
    if not compile:
        counter = FlopCounterMode(display=False)
        with counter:
            step(x, 1, 1.0, 1e-4)
        flops = counter.get_total_flops()
    for i in range(2):
        step(x, 2 + i, 1.0, 1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(x, 4 + i, 1.0, 1e-4)
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    peak = peak_memory_mb(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with quiet_profiler(), profile(activities=activities) as prof:
        for i in range(profile_steps):
            step(x, 100 + i, 1.0, 1e-4)
        sync(device)
    per_step = {k: v / profile_steps for k, v in launches(prof).items()}
    return {"batch_size": batch, "compiled": compile, "amp_bf16": amp and device.type == "cuda",
            "step_ms": dt * 1e3, "images_per_s": batch / dt, "first_step_seconds": first,
            "kernels_per_step": per_step["kernels"] if device.type == "cuda" else None,
            "launch_calls_per_step": per_step["launch_calls"] if device.type == "cuda" else None,
            "aten_ops_per_step": per_step["aten_ops"], "flops_per_step": flops,
            "peak_memory_mb": peak, "parameters": sum(p.numel() for p in model.parameters())}

def iwae_speed(config: Config, device: torch.device, k: int, images: int, data_dir: str | None = None,
               amp: bool = False) -> dict[str, Any]:
    """IWAE samples per second of evaluate_iwae (rows per pass sized from free memory) on real test
    images, with a freshly initialised model: speed does not depend on the weights."""
    cfg = config.override("data.data_dir", data_dir) if data_dir else config
    test = load_split(cfg.data, "test")
    model = MatNet(cfg.model, test.shape).to(device)
    evaluate_iwae(model, test, min(k, 10), limit=2, device=device, amp=amp, progress=False)  # warm-up
    r = evaluate_iwae(model, test, k, limit=images, device=device, amp=amp, progress=False)
    return {"iwae_k": k, "n_images": r["n_images"], "seconds": r["seconds"], "samples_per_s": r["samples_per_s"],
            "rows_per_pass": r["rows_per_pass"], "images_per_batch": r["images_per_batch"], "amp_bf16": r["bf16"]}

def largest_batch_loop(cfg: Config, device: torch.device, peak_mb_at_100: float, steps: int,
                       data_dir: str | None) -> dict[str, Any]:
    """The training loop at the largest batch that fits: estimated from batch 100's peak memory and
    the free memory, run, and halved on running out of memory."""
    free, _ = torch.cuda.mem_get_info(device)
    per_image = max(peak_mb_at_100 * 2 ** 20 / 100, 1.0)
    batch = int(min(0.8 * free / per_image, 25_000) // 100 * 100)
    while batch > 100:
        try:
            return loop_throughput(cfg, device, max(10, steps // 10), batch, data_dir=data_dir)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            batch = batch // 2 // 100 * 100
    return {"batch_size": 100, "note": "no batch above 100 fits"}

def sample_seconds(config: Config, device: torch.device, n: int = 1) -> float:
    """Wall time to draw n images (with the autoregressive head: pixel by pixel)."""
    model = MatNet(config.model, (1, 28, 28)).to(device).eval()
    model.sample(n)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    model.sample(n)
    sync(device)
    return time.perf_counter() - t0

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
