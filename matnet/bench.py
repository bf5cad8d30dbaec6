"""Benchmarks: speed of the paper's MNIST conv MatNet, and the quality a fixed wall time buys.

    python -m matnet.bench [--device D] [--steps N] [--json PATH]   # training loop, step, IWAE speed
    python -m matnet.bench quality --minutes M [--json PATH]        # MatNet vs a one-latent-layer baseline
    python -m matnet.bench gpu-check --out DIR                      # the prepared GPU session (gpucheck.py)
"""
from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import cli
from .config import Config, ConfigError
from .data import load_split
from .device import resolve_device
from .evaluate import evaluate_iwae
from .model import MatNet
from .subset import caption
from .presets import preset


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
    with profile(activities=activities) as prof:
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


def speed(device: torch.device, steps: int, data_dir: str | None = None) -> dict[str, Any]:
    """`python -m matnet.bench`: mnist-conv's training speed through the real loop at batch 100 (and,
    on CUDA, at the largest batch that fits), the bare step's cost (ms, kernels, FLOPs, memory), IWAE
    samples/s, the same with the 5-layer autoregressive head, and the time to draw one image."""
    cfg = preset("mnist-conv")
    compile_on = device.type == "cuda"
    r: dict[str, Any] = {"model": "mnist-conv", "device": str(device), "device_name": device_name(device),
                         "torch": torch.__version__}
    r["loop"] = loop_throughput(cfg, device, steps, 100, data_dir=data_dir)
    r["step"] = step_profile(cfg, device, 100, steps=max(3, min(steps, 20)), compile=compile_on)
    if not compile_on:
        r["step"]["achieved_flop_per_s"] = r["step"]["flops_per_step"] / (r["step"]["step_ms"] / 1e3)
    else:
        eager = step_profile(cfg, device, 100, steps=max(3, min(steps, 20)), compile=False)
        r["step_eager"] = eager
        r["step"]["flops_per_step"] = eager["flops_per_step"]
        r["step"]["achieved_flop_per_s"] = eager["flops_per_step"] / (r["step"]["step_ms"] / 1e3)
        r["largest_batch"] = largest_batch_loop(cfg, device, r["loop"]["peak_memory_mb"], steps, data_dir)
    r["matmul_flop_per_s"] = matmul_flops_per_s(device, torch.float32)
    r["step"]["fraction_of_matmul"] = r["step"]["achieved_flop_per_s"] / r["matmul_flop_per_s"]
    k, n = (2500, 100) if device.type == "cuda" else (100, 10)
    r["iwae"] = iwae_speed(cfg, device, k, n, data_dir)
    head = step_profile(with_head(cfg), device, 100, steps=max(3, min(steps, 20)), compile=False)
    r["with_head"] = {k2: head[k2] for k2 in ("images_per_s", "step_ms", "peak_memory_mb")}
    r["sample_one_image_s"] = sample_seconds(cfg, device)
    r["sample_one_image_with_head_s"] = sample_seconds(with_head(cfg), device)
    return r


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


def print_speed(r: dict[str, Any]) -> None:
    loop, step = r["loop"], r["step"]
    mode = "compiled (CUDA graphs)" if loop["compiled"] else "eager"
    print(f"mnist-conv, {r['device_name']}, fp32{' + TF32' if r['device'].startswith('cuda') else ''}, {mode}")
    print(f"  training loop   {loop['images_per_s']:10.1f} images/s at batch 100 ({loop['step_ms']:.1f} ms/step, "
          f"first step {loop['first_step_seconds']:.1f} s)")
    if "largest_batch" in r and "images_per_s" in r["largest_batch"]:
        lb = r["largest_batch"]
        print(f"  largest batch   {lb['images_per_s']:10.1f} images/s at batch {lb['batch_size']}")
    kernels = f"{step['kernels_per_step']:.0f} kernels, {step['launch_calls_per_step']:.0f} launches per step" \
        if step["kernels_per_step"] is not None else f"{step['aten_ops_per_step']:.0f} aten ops per step"
    print(f"  bare step       {step['step_ms']:10.1f} ms   ({kernels})")
    if "step_eager" in r:
        e = r["step_eager"]
        print(f"  bare step eager {e['step_ms']:10.1f} ms   ({e['kernels_per_step']:.0f} kernels per step)")
    print(f"  IWAE k={r['iwae']['iwae_k']:<5}    {r['iwae']['samples_per_s']:10.1f} samples/s "
          f"({r['iwae']['rows_per_pass']} rows per pass)")
    print(f"  peak memory     {step['peak_memory_mb']:10.1f} MiB ({'cuda allocated' if r['device'].startswith('cuda') else 'process RSS'})")
    print(f"  model FLOP/s    {step['achieved_flop_per_s'] / 1e9:10.2f} GFLOP/s = {100 * step['fraction_of_matmul']:.1f}% "
          f"of dense fp32 matmul ({r['matmul_flop_per_s'] / 1e9:.1f} GFLOP/s)")
    h = r["with_head"]
    print("with a 5-layer autoregressive head (64 channels):")
    print(f"  bare step       {h['images_per_s']:10.1f} images/s   ({h['step_ms']:.1f} ms/step)")
    print(f"  one sample      {r['sample_one_image_with_head_s'] * 1e3:10.1f} ms (pixel by pixel; "
          f"{r['sample_one_image_s'] * 1e3:.1f} ms without the head)")


def sample_seconds(config: Config, device: torch.device, n: int = 1) -> float:
    """Wall time to draw n images (with the autoregressive head: pixel by pixel)."""
    model = MatNet(config.model, (1, 28, 28)).to(device).eval()
    model.sample(n)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    model.sample(n)
    sync(device)
    return time.perf_counter() - t0


def with_head(config: Config, layers: int = 5, channels: int = 64) -> Config:
    return config.with_overrides({"model.ar_layers": layers, "model.ar_channels": channels})


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def baseline_config() -> Config:
    """The same code and layout as mnist-conv with one stochastic layer (z_0) only: every TD module
    is kept, but deterministic (latent_channels 0)."""
    cfg = preset("mnist-conv")
    for mm in cfg.model.meta_modules:
        mm.latent_channels = 0
    return cfg


QUALITY_MODELS = ("matnet", "one-latent-layer")


def quality(minutes: float, device: torch.device, samples: int, limit: int, out_dir: Path,
            data_dir: str | None = None, models: tuple[str, ...] = QUALITY_MODELS,
            subset_seed: int = 0) -> dict[str, Any]:
    from .checkpoint import load_checkpoint
    from .train import train
    results = {}
    for name, cfg in (("matnet", preset("mnist-conv")), ("one-latent-layer", baseline_config())):
        if name not in models:
            continue
        # No KL warm-up: the preset's (25 epochs, 12,500 steps) does not fit a budget of minutes; a
        # MatNet stopped part way through it is scored on a bound it was not yet trained for.
        cfg = cfg.with_overrides({"train.max_minutes": minutes, "train.device": str(device),
                                  "train.eval_every_steps": 500, "data.eval_limit": 1000,
                                  "train.kl_warmup_steps": 0})
        if data_dir:
            cfg = cfg.override("data.data_dir", data_dir)
        t0 = time.perf_counter()
        m = train(cfg, out_dir / name, progress=True)
        model, _, _ = load_checkpoint(out_dir / name / "checkpoint", device)
        test = load_split(cfg.data, "test")
        r = evaluate_iwae(model, test, samples, limit, device=device, subset_seed=subset_seed)
        results[name] = {"test_nll_nats": r["nll_nats"], "test_elbo_nats": r["elbo_nats"], "iwae_k": samples,
                         "n_images": r["n_images"], "subset": r["subset"], "iwae_seconds": r["seconds"],
                         "train_steps": m["step"], "train_minutes": minutes,
                         "wall_minutes": (time.perf_counter() - t0) / 60, "latent_layers": model.num_layers}
    return {"device": str(device), "device_name": device_name(device), "dataset": "mnist (dynamic binarization)",
            **results}


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m matnet.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="?", default="speed", choices=["speed", "quality", "gpu-check"])
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="also write the figures as JSON here")
    p.add_argument("--steps", type=cli.at_least(0, "0: the device's default"), default=0,
                   help="timed training steps (speed; default 10 on the CPU, 300 on CUDA)")
    p.add_argument("--minutes", type=cli.positive_number, default=10.0, help="training wall time per model (quality)")
    p.add_argument("--samples", type=cli.at_least(1), default=1000, help="IWAE samples per test image (quality)")
    p.add_argument("--limit", type=cli.at_least(0, "0: all"), default=1000,
                   help="test images evaluated, a seeded sample spread over the test set (quality; 0: all)")
    p.add_argument("--subset-seed", type=int, default=0, help="which sample --limit takes (quality)")
    p.add_argument("--out", default="runs/bench-quality", help="run directories (quality); the folder of "
                   "gpu-check's JSON")
    p.add_argument("--models", default=",".join(QUALITY_MODELS),
                   help=f"quality: which of {', '.join(QUALITY_MODELS)} to train (comma-separated; default both)")
    p.add_argument("--budget-minutes", type=cli.positive_number, default=8.0, help="gpu-check: wall time to fit in (default 8)")
    p.add_argument("--quick", action="store_true", help="gpu-check: tiny sizes, to try it on a CPU")
    p.add_argument("--data-dir")
    args = p.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models or set(models) - set(QUALITY_MODELS):
        raise ConfigError(f"--models {args.models!r}: use one or both of {', '.join(QUALITY_MODELS)}")
    from .outputs import check_output, write_json
    from .runfolder import check_run_folder
    json_out = check_output(args.json, "--json") if args.json is not None else None
    if args.what == "quality":  # its run folders, before minutes of training each
        for name in models:
            cfg = preset("mnist-conv") if name == "matnet" else baseline_config()
            check_run_folder(Path(args.out) / name, cfg.override("data.data_dir", args.data_dir) if args.data_dir else cfg)
    device = resolve_device(args.device)
    if args.what == "gpu-check":
        from .gpucheck import gpu_check
        r = gpu_check(Path(args.out), device, args.budget_minutes, args.quick, args.data_dir)
    elif args.what == "speed":
        r = speed(device, args.steps or (300 if device.type == "cuda" else 10), args.data_dir)
        print_speed(r)
    else:
        r = quality(args.minutes, device, args.samples, args.limit, Path(args.out), args.data_dir, models,
                    args.subset_seed)
        first = r[models[0]]
        print(f"test IWAE on {caption(first['subset'], 'test set')} ({first['n_images']} images)")
        print(f"{'model':>18}  {'layers':>6}  {'steps':>6}  {'IWAE k=' + str(args.samples):>12}  {'ELBO':>8}")
        for name in models:
            q = r[name]
            print(f"{name:>18}  {q['latent_layers']:>6}  {q['train_steps']:>6}  {q['test_nll_nats']:>12.2f}  "
                  f"{q['test_elbo_nats']:>8.2f}")
    if json_out is not None:
        write_json(json_out, r)
    return 0


if __name__ == "__main__":
    cli.run(main)
