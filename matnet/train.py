"""One training loop, used by the command line and by search trials alike.

    python -m matnet.train --preset tiny --out runs/tiny --max-steps 500

The run (training_run.py) keeps the training images on the device and gathers and binarizes each
batch there; the update itself (step.py) never waits for the device, and the loop reads values back
only where it logs: at evaluations and every train.max_nonfinite_in_a_row steps (to stop a diverged
run). What changes with the step (learning rate, warm-ups, seeds) is in schedule.py.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from . import cli, folders
from .config import Config, ConfigError, parse_set
from .device import resolve_device
from .presets import PRESETS, preset
from .runfolder import check_run_folder
from .schedule import epoch_order, kl_weight, learning_rate, learning_rate_at, step_seed, warmup_steps
from .training_run import TrainingRun
from .validate import validate

# report(metrics, checkpoint_dir): called after every evaluation, with the checkpoint just written.
Report = Callable[[dict[str, Any], "Path | None"], None]

__all__ = ["Report", "epoch_order", "kl_weight", "learning_rate", "learning_rate_at", "step_seed", "train",
           "use_compile", "warmup_steps"]


def use_compile(cfg: Config, device: torch.device) -> bool:
    """train.compile: auto compiles on CUDA (the unconditional model's step: the path the GPU check
    measures); true / false force it (validate.py refuses any other word)."""
    value = cfg.train.compile.lower()
    if value == "auto":
        return device.type == "cuda" and cfg.data.task == "generate" and cfg.train.inference_reg_weight == 0
    return value in ("true", "on")


def train(config: Config, out_dir: str | Path | None = None, report: Report | None = None,
          progress: bool = True, fresh_optimizer: bool = False, draw_figure: bool = True) -> dict[str, Any]:
    """Train a MatNet with the ELBO (eq. 5); evaluate on the validation split, write metrics and a
    checkpoint, and call `report` at every epoch end (or every `eval_every_steps`). Resumes from
    `out_dir/checkpoint` when one is there (`fresh_optimizer`: from its weights and step only, with a
    new optimizer state). `draw_figure`: Figure 4 redrawn at every evaluation (a search's trials leave
    it to whoever reads their checkpoints: matnet.figures.history_figure). Returns the last metrics."""
    # Bad values and a bad --out folder are refused before anything is loaded (validate.py, runfolder.py).
    validate(config)
    if out_dir is not None:
        check_run_folder(out_dir, config)
    warmup_steps(config)
    compile_step = use_compile(config, resolve_device(config.train.device))
    run = TrainingRun(config, out_dir, fresh_optimizer, compile_step, draw_figure)

    bar = tqdm(total=run.plan.total_steps, initial=run.step, disable=not progress, unit="step",
               desc=f"train {config.data.dataset}", dynamic_ncols=True)
    check_every = max(1, config.train.max_nonfinite_in_a_row)
    run.model.train()
    # Decided once per step, so that the evaluation that ends the run knows it is the last.
    stop = run.out_of_budget()
    try:
        while not stop:
            run.update()
            bar.update(1)
            stop = run.out_of_budget()
            evaluate_now = stop or run.step % run.plan.eval_every == 0
            if evaluate_now or run.step % check_every == 0:
                run.stop_if_diverged()
            if evaluate_now:
                metrics, saved = run.evaluate_and_save(final=stop)
                if report is not None:
                    report(metrics, saved)
                bar.set_postfix(loss=f"{metrics['train_loss']:.2f}", refresh=False)
        if not run.last or run.last.get("step") != run.step:
            metrics, saved = run.evaluate_and_save(final=True)  # nothing was left to train (resumed at its end)
            if report is not None:
                report(metrics, saved)
    finally:
        bar.close()
    return run.last


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
    print(f"checkpoint: {Path(args.out) / folders.RUN_CHECKPOINT}")
    return 0


if __name__ == "__main__":
    cli.run(main)
