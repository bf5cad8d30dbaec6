"""Benchmarks: speed of the paper's MNIST conv MatNet, and the quality a fixed wall time buys.

    python -m matnet.bench [--device D] [--json PATH]          # throughput, memory, FLOP/s
    python -m matnet.bench quality --minutes M [--json PATH]   # MatNet vs a one-latent-layer baseline
"""
from __future__ import annotations

import math
import resource
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import cli
from .config import Config, ConfigError
from .data import load_split
from .device import autocast, resolve_device
from .evaluate import evaluate_iwae
from .model import MatNet
from .objectives import elbo_loss, iwae_bound
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


def throughput(config: Config, device: torch.device, batch: int = 100, steps: int = 10,
               iwae_k: int = 100, iwae_images: int = 10) -> dict[str, Any]:
    amp = config.train.amp and device.type == "cuda"
    model = MatNet(config.model, (1, 28, 28)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.bernoulli(torch.full((batch, 1, 28, 28), 0.13, device=device))

    def step() -> None:
        with autocast(device, amp):
            out = model(x)
        loss = elbo_loss(out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops_per_step = counter.get_total_flops()
    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    peak = peak_memory_mb(device)

    model.eval()
    xs = x[:iwae_images]
    with autocast(device, amp):
        iwae_bound(model, xs, 10, rows_per_pass=1000)
        sync(device)
        t0 = time.perf_counter()
        iwae_bound(model, xs, iwae_k, rows_per_pass=1000)
        sync(device)
    t_iwae = time.perf_counter() - t0

    matmul = matmul_flops_per_s(device, torch.bfloat16 if amp else torch.float32)
    achieved = flops_per_step / dt
    return {
        "model": "mnist-conv" + (f" + {config.model.ar_layers}-layer head" if config.model.ar_layers else ""), "device": str(device), "device_name": device_name(device),
        "batch_size": batch, "amp_bf16": amp, "parameters": sum(p.numel() for p in model.parameters()),
        "train_images_per_s": batch / dt, "train_step_ms": dt * 1e3,
        "iwae_samples_per_s": iwae_images * iwae_k / t_iwae,
        "peak_memory_mb": peak, "peak_memory_kind": "cuda allocated" if device.type == "cuda" else "process RSS",
        "flops_per_train_step": flops_per_step, "achieved_flop_per_s": achieved,
        "matmul_flop_per_s": matmul, "fraction_of_matmul": achieved / matmul,
    }


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
            data_dir: str | None = None, models: tuple[str, ...] = QUALITY_MODELS) -> dict[str, Any]:
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
        model, _, _ = __import__("matnet.checkpoint", fromlist=["load_checkpoint"]).load_checkpoint(
            out_dir / name / "checkpoint", device)
        test = load_split(cfg.data, "test")
        r = evaluate_iwae(model, test, samples, limit, batch_size=10, device=device, amp=cfg.train.amp)
        results[name] = {"test_nll_nats": r["nll_nats"], "test_elbo_nats": r["elbo_nats"], "iwae_k": samples,
                         "n_images": r["n_images"], "train_steps": m["step"], "train_minutes": minutes,
                         "wall_minutes": (time.perf_counter() - t0) / 60, "latent_layers": model.num_layers}
    return {"device": str(device), "device_name": device_name(device), "dataset": "mnist (dynamic binarization)",
            **results}


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m matnet.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="?", default="speed", choices=["speed", "quality"])
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="also write the figures as JSON here")
    p.add_argument("--steps", type=cli.at_least(1), default=10, help="timed training steps (speed)")
    p.add_argument("--minutes", type=cli.positive_number, default=10.0, help="training wall time per model (quality)")
    p.add_argument("--samples", type=cli.at_least(1), default=1000, help="IWAE samples per test image (quality)")
    p.add_argument("--limit", type=cli.at_least(0, "0: all"), default=1000, help="test images evaluated (quality)")
    p.add_argument("--out", default="runs/bench-quality", help="run directories (quality)")
    p.add_argument("--models", default=",".join(QUALITY_MODELS),
                   help=f"quality: which of {', '.join(QUALITY_MODELS)} to train (comma-separated; default both)")
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
    if args.what == "speed":
        r = throughput(preset("mnist-conv"), device, steps=args.steps)
        head = throughput(with_head(preset("mnist-conv")), device, steps=args.steps)
        r["with_head"] = {k: head[k] for k in ("model", "train_images_per_s", "train_step_ms", "peak_memory_mb",
                                               "fraction_of_matmul")}
        r["sample_one_image_s"] = sample_seconds(preset("mnist-conv"), device)
        r["sample_one_image_with_head_s"] = sample_seconds(with_head(preset("mnist-conv")), device)
        print(f"mnist-conv, batch {r['batch_size']}, {r['device_name']}{' (bf16 autocast)' if r['amp_bf16'] else ''}")
        print(f"  training      {r['train_images_per_s']:10.1f} images/s   ({r['train_step_ms']:.1f} ms/step)")
        print(f"  IWAE          {r['iwae_samples_per_s']:10.1f} samples/s")
        print(f"  peak memory   {r['peak_memory_mb']:10.1f} MiB ({r['peak_memory_kind']})")
        print(f"  model FLOP/s  {r['achieved_flop_per_s'] / 1e9:10.2f} GFLOP/s = "
              f"{100 * r['fraction_of_matmul']:.1f}% of dense matmul ({r['matmul_flop_per_s'] / 1e9:.1f} GFLOP/s)")
        h = r["with_head"]
        print(f"with a {h['model'].split('+ ')[1]} (64 channels):")
        print(f"  training      {h['train_images_per_s']:10.1f} images/s   ({h['train_step_ms']:.1f} ms/step)")
        print(f"  one sample    {r['sample_one_image_with_head_s'] * 1e3:10.1f} ms (pixel by pixel; "
              f"{r['sample_one_image_s'] * 1e3:.1f} ms without the head)")
    else:
        r = quality(args.minutes, device, args.samples, args.limit, Path(args.out), args.data_dir, models)
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
