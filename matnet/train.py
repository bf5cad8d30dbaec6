"""One training loop, used by the command line and by search trials alike.

    python -m matnet.train --preset tiny --out runs/tiny --max-steps 500

Every random draw of step s (the batch order of its epoch, the dynamic binarization, the
reparametrization noise) is derived from (seed, epoch, step), so a run resumed from a checkpoint
repeats exactly what the uninterrupted run would have done.

The loop keeps the training images on the device and gathers and binarizes each batch there; the
update itself (step.py) never waits for the device, and the loop reads values back only where it
logs: at evaluations and every train.max_nonfinite_in_a_row steps (to stop a diverged run).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from . import cli
from .budget import budget
from .build import build_model
from .checkpoint import save_checkpoint
from .config import Config, ConfigError, parse_set
from .data import load_split
from .device import resolve_device, use_tf32
from .evaluate import evaluate_elbo
from .masks import mask_maker
from .metricslog import keep_through
from .nonfinite import NonFiniteLossError, locate
from .step import TrainStep, make_optimizer, step_loss
from .plots import plot_kl_per_layer, read_metrics
from .presets import PRESETS, preset
from .runfolder import check_run_folder, load_optimizer_state, resume_point
from .validate import validate

# report(metrics, checkpoint_dir): called after every evaluation, with the checkpoint just written.
Report = Callable[[dict[str, Any], "Path | None"], None]


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2 ** 63)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed((seed * 7_919 + epoch) % (2 ** 63))
    return torch.randperm(n, generator=g)


def learning_rate(cfg: Config, epoch: int) -> float:
    halvings = sum(1 for e in cfg.train.lr_halve_epochs if epoch >= e)
    return cfg.train.lr * 0.5 ** halvings


def warmup_steps(cfg: Config, total_steps: int | None = None) -> int:
    """Steps of the learning-rate warm-up: train.lr_warmup_steps, or for -1 the span over which Adam's
    second-moment estimate averages, 2 / (1 - beta2) (Ma & Yarats 2021), but at most a tenth of a
    run of `total_steps`: a search's short trials (the quickstart's train 120 steps) would otherwise
    never reach their rate, and ASHA would rank them at a fraction of it."""
    n = cfg.train.lr_warmup_steps
    if n < -1:
        raise ConfigError(f"train.lr_warmup_steps={n}: use a number of steps >= 0, or -1 for 2 / (1 - beta2)")
    if n != -1:
        return n
    full = round(2.0 / max(1.0 - cfg.train.betas[1], 1e-6))
    return full if total_steps is None else min(full, max(1, total_steps // 10))


def learning_rate_at(cfg: Config, step: int, steps_per_epoch: int, total_steps: int | None = None) -> float:
    """The rate of step `step` of a run of `total_steps`: the epoch's (halvings) times the linear warm-up."""
    w = warmup_steps(cfg, total_steps)
    return learning_rate(cfg, step // steps_per_epoch) * (1.0 if w <= 0 else min(1.0, (step + 1) / w))


def use_compile(cfg: Config, device: torch.device) -> bool:
    """train.compile: auto compiles on CUDA (the unconditional model's step: the path the GPU check
    measures); true / false force it."""
    value = cfg.train.compile.lower()
    if value not in ("auto", "true", "false", "on", "off"):
        raise ConfigError(f"train.compile={cfg.train.compile!r}: use auto, true or false")
    if value == "auto":
        return device.type == "cuda" and cfg.data.task == "generate" and cfg.train.inference_reg_weight == 0
    return value in ("true", "on")


def kl_weight(cfg: Config, step: int) -> float:
    """KL warm-up: linear from 0 to 1 over kl_warmup_steps."""
    w = cfg.train.kl_warmup_steps
    return 1.0 if w <= 0 else min(1.0, (step + 1) / w)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be redone), and a torn
    line (metricslog.py)."""
    keep_through(path, step)


def train(config: Config, out_dir: str | Path | None = None, report: Report | None = None,
          progress: bool = True, fresh_optimizer: bool = False) -> dict[str, Any]:
    """Train a MatNet with the ELBO (eq. 5); evaluate on the validation split, write metrics and a
    checkpoint, and call `report` at every epoch end (or every `eval_every_steps`). Resumes from
    `out_dir/checkpoint` when one is there (`fresh_optimizer`: from its weights and step only, with a
    new optimizer state). Returns the last metrics."""
    # Bad values and a bad --out folder are refused before anything is loaded (validate.py, runfolder.py).
    validate(config)
    if out_dir is not None:
        check_run_folder(out_dir, config)
    tc = config.train
    device = resolve_device(tc.device)
    warmup_steps(config)
    use_compile(config, device)  # bad values of the two fail here, before any work
    use_tf32(device)
    amp = tc.amp
    out = Path(out_dir).expanduser() if out_dir is not None else None
    ckpt_dir = out / "checkpoint" if out is not None else None
    point = resume_point(out, config, device, fresh_optimizer) if out is not None else None

    train_split = load_split(config.data, "train")
    valid_split = load_split(config.data, "valid")
    train_split.images = train_split.images.to(device)
    plan = budget(config, len(train_split))
    steps_per_epoch = plan.steps_per_epoch

    torch.manual_seed(tc.seed)
    # data.task picks the model and the loss: generate -> MatNet and eq. 5; impute -> a conditional
    # MatNet and eq. 6 under masks drawn afresh for every batch (conditional.py).
    model = build_model(config, train_split.shape).to(device)
    masks = None
    if config.data.task == "impute":
        masks = mask_maker(config.data, train_split.shape)
        model.set_data_mean(train_split.images)  # the fill of unknown pixels
    opt = make_optimizer(model, tc.betas, tc.lr, tc.weight_decay)
    step_fn = TrainStep(model, opt, device, amp, use_compile(config, device), tc.grad_clip, tc.inference_reg_weight)
    state = {"step": 0, "skipped_steps": 0, "train_seconds": 0.0}
    last: dict[str, Any] = {}

    if point is not None:
        model.load_state_dict(point.weights)
        if point.optimizer is not None:
            load_optimizer_state(opt, point.optimizer, ckpt_dir)
        state.update(point.counters)
        step_fn.set_skipped(state["skipped_steps"])
        last = point.metrics
    if out is not None:
        # The checkpoint is the truth: metric lines after its step (or all, with no checkpoint) are redone.
        _truncate_metrics(out / "metrics.jsonl", state["step"])
        out.mkdir(parents=True, exist_ok=True)
        config.to_json(out / "config.json")

    deadline = time.monotonic() + tc.max_minutes * 60 if tc.max_minutes > 0 else math.inf
    bar = tqdm(total=plan.total_steps, initial=state["step"], disable=not progress, unit="step",
               desc=f"train {config.data.dataset}", dynamic_ncols=True)
    t_seg = time.monotonic()
    images_seen_seg = 0

    def evaluate_and_save(final: bool) -> None:
        nonlocal t_seg, images_seen_seg, last
        counters = step_fn.read()  # waits for the device: the segment's time is now exact
        now = time.monotonic()
        state["train_seconds"] += now - t_seg
        state["skipped_steps"] = counters["skipped"]
        run_n = counters["updates"]
        v = evaluate_elbo(model, valid_split, config.data.eval_limit, max(tc.batch_size, 100), device, amp,
                          masks=masks)
        step = state["step"]
        metrics = {
            "step": step, "epoch": step / steps_per_epoch,
            "lr": learning_rate_at(config, max(step - 1, 0), steps_per_epoch, plan.total_steps),
            "kl_weight": kl_weight(config, step - 1),
            "train_loss": counters["loss_sum"] / max(run_n, 1),
            "train_elbo_nats": counters["neg_elbo_sum"] / max(run_n, 1),
            "skipped_steps": state["skipped_steps"], "train_seconds": state["train_seconds"],
            "images_per_s": images_seen_seg / max(now - t_seg, 1e-9),
            "compiled": step_fn.compiled,
            # Wall time of this process's first update: with train.compile, mostly the compilation.
            **({"first_step_seconds": step_fn.first_step_seconds} if step_fn.first_step_seconds is not None else {}),
            **{f"val_{k}": v[k] for k in v if k != "n_images"},
            # The run's last evaluation: its budget is trained (or its time is up). A search tells a
            # trial that finished from one its scheduler stopped by this (search/outcome.py).
            "final": final,
        }
        last = metrics
        saved = None
        if out is not None:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            # Figure 4 from the whole history so far.
            plot_kl_per_layer(read_metrics(out / "metrics.jsonl"), model.layer_meta(), out / "kl_per_layer.png",
                              model.meta_labels())
            saved = save_checkpoint(ckpt_dir, model, config,
                                    {"dataset": train_split.name, "step": step, "metrics": metrics},
                                    {"optimizer": opt.state_dict(), **state})
        if report is not None:
            report(metrics, saved)
        images_seen_seg = 0
        t_seg = time.monotonic()

    def out_of_budget() -> bool:
        return plan.is_last(state["step"]) or time.monotonic() >= deadline

    def batch_of(step: int) -> torch.Tensor:
        """The batch of step `step`: its images gathered and binarized on the device, with the global
        generators seeded from (seed, step) first, so that the draws of the step follow from it."""
        nonlocal order, order_epoch
        epoch, pos = divmod(step, steps_per_epoch)
        if order_epoch != epoch:  # one host-to-device copy per epoch
            order, order_epoch = epoch_order(tc.seed, epoch, len(train_split)).to(device), epoch
        torch.manual_seed(step_seed(tc.seed, step))
        return train_split.batch(order[pos * tc.batch_size:(pos + 1) * tc.batch_size])

    def stop_if_diverged() -> None:
        c = step_fn.read(reset=False)
        if c["in_a_row"] < tc.max_nonfinite_in_a_row:
            return
        bar.close()
        start = c["run_start"]
        x = batch_of(start)
        known = masks(x.shape[0]).to(device) if masks is not None else None
        where = locate(model, lambda: step_loss(model, x, torch.tensor(kl_weight(config, start)), known,
                                                tc.inference_reg_weight, amp)[::2])
        raise NonFiniteLossError(
            f"training diverged: {c['in_a_row']} updates in a row (from step {start}) had a non-finite loss or "
            f"gradient; {where}; the last good checkpoint is kept; lower train.lr or raise train.lr_warmup_steps")

    order, order_epoch = None, -1
    check_every = max(1, tc.max_nonfinite_in_a_row)
    first_step = True
    model.train()
    # Decided once per step, so that the evaluation that ends the run knows it is the last.
    stop = out_of_budget()
    while not stop:
        step = state["step"]
        x = batch_of(step)
        known = masks(x.shape[0]).to(device) if masks is not None else None
        lr = learning_rate_at(config, step, steps_per_epoch, plan.total_steps)
        step_fn(x, step, kl_weight(config, step), lr, known)
        state["step"] += 1
        images_seen_seg += x.shape[0]
        if first_step:
            # The first update (with train.compile, the compilation; without, cuDNN's autotuning and
            # the allocator's warm-up) is not throughput: the segment's clock starts after it
            # (TrainStep timed it to the end of its device work: first_step_seconds).
            t_first = time.monotonic()
            state["train_seconds"] += t_first - t_seg
            t_seg, images_seen_seg = t_first, 0
        first_step = False
        bar.update(1)
        stop = out_of_budget()
        evaluate_now = stop or state["step"] % plan.eval_every == 0
        if evaluate_now or state["step"] % check_every == 0:
            stop_if_diverged()
        if evaluate_now:
            evaluate_and_save(final=stop)
            bar.set_postfix(loss=f"{last['train_loss']:.2f}", refresh=False)
    if not last or last.get("step") != state["step"]:
        evaluate_and_save(final=True)  # a run that had nothing left to train (e.g. resumed at its end)
    bar.close()
    return last


def build_config(args: argparse.Namespace) -> Config:
    if (args.preset is None) == (args.config is None):
        raise ConfigError("give exactly one of --preset NAME or --config FILE")
    cfg = preset(args.preset) if args.preset else Config.from_json(args.config, "give a config.json written by "
                                                                          "matnet.train (e.g. RUN/config.json)")
    sets = parse_set(args.set or [])
    for flag, key in (("max_steps", "train.max_steps"), ("max_minutes", "train.max_minutes"),
                      ("seed", "train.seed"), ("device", "train.device"), ("data_dir", "data.data_dir")):
        if getattr(args, flag, None) is not None:
            sets[key] = getattr(args, flag)
    return cfg.with_overrides(sets)


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m matnet.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=list(PRESETS), help="a named configuration")
    p.add_argument("--config", help="a config.json (e.g. from a run directory)")
    p.add_argument("--out", required=True, help="run directory: metrics.jsonl, checkpoint/ (resumed if present)")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--data-dir")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=5e-4 (repeatable)")
    p.add_argument("--fresh-optimizer", action="store_true",
                   help="resume from the checkpoint's weights and step with a new optimizer state (when its "
                        "train_state.pt is missing or unreadable; the run then differs from an uninterrupted one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    cfg = build_config(args)
    m = train(cfg, args.out, progress=not args.quiet, fresh_optimizer=args.fresh_optimizer)
    keys = ["step", "epoch", "train_loss", "val_elbo_nats", "val_recon_nats", "val_kl_nats", "val_bpd", "skipped_steps"]
    for k in keys:
        if k in m:
            print(f"{k:>16}  {m[k]:.4f}" if isinstance(m[k], float) else f"{k:>16}  {m[k]}")
    print(f"checkpoint: {Path(args.out) / 'checkpoint'}")
    return 0


if __name__ == "__main__":
    cli.run(main)
