"""Benchmarks: speed of the paper's MNIST conv MatNet, and the quality a fixed wall time buys.

    python -m matnet.bench [--device D] [--steps N] [--json PATH]   # training loop, step, IWAE speed
    python -m matnet.bench quality --minutes M [--json PATH]        # MatNet vs a one-latent-layer baseline
    python -m matnet.bench presets [--presets P,Q] [--seeds 0,1,2]  # every preset trains under every budget form

The measuring functions are in measure.py, the preset check in preset_check.py; the prepared GPU
session is scripts/gpu_check.py.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from . import cli
from .config import Config, ConfigError
from .data import load_split
from .device import resolve_device
from .evaluate import evaluate_iwae
from .measure import (device_name, iwae_speed, largest_batch_loop, loop_throughput, matmul_flops_per_s,
                      sample_seconds, step_profile)
from .subset import caption
from .presets import preset


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


def with_head(config: Config, layers: int = 5, channels: int = 64) -> Config:
    return config.with_overrides({"model.ar_layers": layers, "model.ar_channels": channels})


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


def seeds(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"--seeds {text!r}: give seeds >= 0, comma-separated, e.g. 0,1,2")
    return values


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m matnet.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="?", default="speed", choices=["speed", "quality", "presets"])
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="also write the figures as JSON here")
    p.add_argument("--steps", type=cli.at_least(0, "0: the command's default"), default=0,
                   help="timed training steps (speed; default 10 on the CPU, 300 on CUDA); steps of a short run "
                        "(presets; default 30)")
    p.add_argument("--minutes", type=cli.positive_number,
                   help="training wall time per model (quality; default 10); of a run bounded by time (presets; "
                        "default 1)")
    p.add_argument("--presets", default="", help="presets: which ones (comma-separated; default all)")
    p.add_argument("--seeds", default="0,1,2", help="presets: the seeds of each run (comma-separated)")
    p.add_argument("--images", help="presets: the image folder of the presets that read one (faces-occluders)")
    p.add_argument("--append", action="store_true",
                   help="presets: add these runs to the --json file's (another set of presets or seeds)")
    p.add_argument("--samples", type=cli.at_least(1), default=1000, help="IWAE samples per test image (quality)")
    p.add_argument("--limit", type=cli.at_least(0, "0: all"), default=1000,
                   help="test images evaluated, a seeded sample spread over the test set (quality; 0: all)")
    p.add_argument("--subset-seed", type=int, default=0, help="which sample --limit takes (quality)")
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
    if args.what == "presets":
        from .preset_check import check_presets, merge, preset_names, summary_table
        r = check_presets(preset_names(args.presets), seeds(args.seeds), args.steps or 30, args.minutes or 1.0,
                          str(device), args.data_dir, args.images)
        r["command"] = ["python -m matnet.bench " + " ".join(argv if argv is not None else sys.argv[1:])]
        if args.append and json_out is not None and json_out.exists():
            r = merge(json.loads(json_out.read_text()), r)
        print(summary_table(r))
        print(f"passed: {', '.join(r['passed']) or 'none'}")
    elif args.what == "speed":
        r = speed(device, args.steps or (300 if device.type == "cuda" else 10), args.data_dir)
        print_speed(r)
    else:
        r = quality(args.minutes or 10.0, device, args.samples, args.limit, Path(args.out), args.data_dir, models,
                    args.subset_seed)
        first = r[models[0]]
        print(f"test IWAE on {caption(first['subset'], 'test set')} ({first['n_images']} images)")
        print(f"{'model':>18}  {'layers':>6}  {'steps':>6}  {'IWAE k=' + str(args.samples):>12}  {'ELBO':>8}")
        for name in models:
            q = r[name]
            print(f"{name:>18}  {q['latent_layers']:>6}  {q['train_steps']:>6}  {q['test_nll_nats']:>12.2f}  "
                  f"{q['test_elbo_nats']:>8.2f}")
    if json_out is not None:
        if args.what != "presets":  # (presets record theirs per run, and merge them)
            from .record import stamp
            r = {**stamp("python -m matnet.bench", argv), **r}
        write_json(json_out, r)
    return 0


if __name__ == "__main__":
    cli.run(main)
