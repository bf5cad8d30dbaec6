"""A training run in progress (matnet.train's loop drives it): its data on the device, its model,
optimizer and compiled step, where it is (step, skipped updates, training seconds, its warm-up), and
its run folder (config.json, metrics.jsonl, Figure 4, checkpoint/; folders.py names them).

Every random draw of step s (the batch order of its epoch, the dynamic binarization, the
reparametrization noise) is derived from (seed, epoch, step) (schedule.py), so a run resumed from a
checkpoint repeats exactly what the uninterrupted run would have done. The learning-rate warm-up a
run starts with is part of its state: a run resumed with another --max-steps keeps it.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from . import folders
from .budget import budget
from .build import build_model
from .checkpoint import save_checkpoint
from .config import Config
from .data import load_split
from .device import resolve_device, use_tf32
from .evaluate import evaluate_elbo
from .masks import mask_maker
from .metricslog import keep_through
from .nonfinite import NonFiniteLossError, locate
from .plots import plot_kl_per_layer, read_metrics
from .runfolder import load_optimizer_state, resume_point
from .schedule import epoch_order, kl_weight, learning_rate_at, step_seed, warmup_steps
from .step import TrainStep, make_optimizer, step_loss


class TrainingRun:
    def __init__(self, config: Config, out_dir: str | Path | None, fresh_optimizer: bool, compile_step: bool,
                 draw_figure: bool = True):
        tc = config.train
        self.config = config
        self.device = resolve_device(tc.device)
        use_tf32(self.device)
        self.out = Path(out_dir).expanduser() if out_dir is not None else None
        self.draw_figure = draw_figure
        point = resume_point(self.out, config, self.device, fresh_optimizer) if self.out is not None else None

        self.train_split = load_split(config.data, "train")
        self.valid_split = load_split(config.data, "valid")
        self.train_split.images = self.train_split.images.to(self.device)
        self.plan = budget(config, len(self.train_split))

        torch.manual_seed(tc.seed)
        # data.task picks the model and the loss: generate -> MatNet and eq. 5; impute -> a conditional
        # MatNet and eq. 6 under masks drawn afresh for every batch (conditional.py).
        self.model = build_model(config, self.train_split.shape).to(self.device)
        self.masks = None
        if config.data.task == "impute":
            self.masks = mask_maker(config.data, self.train_split.shape)
            self.model.set_data_mean(self.train_split.images)  # the fill of unknown pixels
        self.opt = make_optimizer(self.model, tc.betas, tc.lr, tc.weight_decay)
        self.step_fn = TrainStep(self.model, self.opt, self.device, tc.amp, compile_step, tc.grad_clip,
                                 tc.inference_reg_weight)
        # The warm-up follows from the step budget alone, also under train.max_minutes, so a config
        # trains the same on any machine: sized to the steps a slow machine reaches in its time, it
        # would be a few steps long, too short for the paper's models (schedule.warmup_steps).
        self.state: dict[str, Any] = {"step": 0, "skipped_steps": 0, "train_seconds": 0.0,
                                      "warmup_steps": warmup_steps(config, self.plan.total_steps)}
        self.last: dict[str, Any] = {}
        if point is not None:
            self.model.load_state_dict(point.weights)
            if point.optimizer is not None:
                load_optimizer_state(self.opt, point.optimizer, self.out / folders.RUN_CHECKPOINT)
            self.state.update({k: v for k, v in point.counters.items() if not (k == "warmup_steps" and v < 0)})
            self.step_fn.set_skipped(self.state["skipped_steps"])
            self.last = point.metrics
        if self.out is not None:
            # The checkpoint is the truth: metric lines after its step (or all, with no checkpoint) are
            # redone, and a torn line dropped (metricslog.py).
            keep_through(self.out / folders.RUN_METRICS, self.state["step"])
            self.out.mkdir(parents=True, exist_ok=True)
            config.to_json(self.out / folders.RUN_CONFIG)
        self.deadline = time.monotonic() + tc.max_minutes * 60 if tc.max_minutes > 0 else math.inf
        self.order, self.order_epoch = None, -1
        self.segment_start = time.monotonic()   # the clock of the training time since the last evaluation
        self.segment_images = 0
        self.first_update_done = False

    @property
    def step(self) -> int:
        return self.state["step"]

    def out_of_budget(self) -> bool:
        return self.plan.is_last(self.step) or time.monotonic() >= self.deadline

    # ---- one update --------------------------------------------------------------------------------
    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch of step `step` (its images gathered and binarized on the device, with the global
        generators seeded from (seed, step) first, so that the draws of the step follow from it) and its
        known-pixel masks (imputation)."""
        tc = self.config.train
        epoch, pos = divmod(step, self.plan.steps_per_epoch)
        if self.order_epoch != epoch:  # one host-to-device copy per epoch
            self.order, self.order_epoch = epoch_order(tc.seed, epoch, len(self.train_split)).to(self.device), epoch
        torch.manual_seed(step_seed(tc.seed, step))
        x = self.train_split.batch(self.order[pos * tc.batch_size:(pos + 1) * tc.batch_size])
        known = self.masks(x.shape[0]).to(self.device) if self.masks is not None else None
        return x, known

    def update(self) -> None:
        step = self.step
        x, known = self.batch(step)
        lr = learning_rate_at(self.config, step, self.plan.steps_per_epoch, warmup=self.state["warmup_steps"])
        self.step_fn(x, step, kl_weight(self.config, step), lr, known)
        self.state["step"] += 1
        self.segment_images += x.shape[0]
        if not self.first_update_done:
            # The first update (with train.compile, the compilation; without, cuDNN's autotuning and the
            # allocator's warm-up) is not throughput: the segment's clock starts after it (TrainStep
            # timed it to the end of its device work: first_step_seconds).
            now = time.monotonic()
            self.state["train_seconds"] += now - self.segment_start
            self.segment_start, self.segment_images = now, 0
            self.first_update_done = True

    def stop_if_diverged(self) -> None:
        tc = self.config.train
        c = self.step_fn.read(reset=False)
        if c["in_a_row"] < tc.max_nonfinite_in_a_row:
            return
        start = c["run_start"]
        x, known = self.batch(start)
        where = locate(self.model, lambda: step_loss(self.model, x, torch.tensor(kl_weight(self.config, start)),
                                                     known, tc.inference_reg_weight, tc.amp)[::2])
        raise NonFiniteLossError(
            f"training diverged: {c['in_a_row']} updates in a row (from step {start}) had a non-finite loss or "
            f"gradient; {where}; the last good checkpoint is kept; lower train.lr or raise train.lr_warmup_steps")

    # ---- an evaluation -----------------------------------------------------------------------------
    def evaluate_and_save(self, final: bool) -> tuple[dict[str, Any], Path | None]:
        """The validation ELBO, the metrics of the segment since the last evaluation, a line of
        metrics.jsonl, Figure 4 and a checkpoint: (metrics, the checkpoint folder or None)."""
        tc, state = self.config.train, self.state
        counters = self.step_fn.read()  # waits for the device: the segment's time is now exact
        now = time.monotonic()
        state["train_seconds"] += now - self.segment_start
        state["skipped_steps"] = counters["skipped"]
        updates = max(counters["updates"], 1)
        v = evaluate_elbo(self.model, self.valid_split, self.config.data.eval_limit, max(tc.batch_size, 100),
                          self.device, tc.amp, masks=self.masks)
        step = self.step
        metrics = {
            "step": step, "epoch": step / self.plan.steps_per_epoch,
            "lr": learning_rate_at(self.config, max(step - 1, 0), self.plan.steps_per_epoch,
                                   warmup=state["warmup_steps"]),
            "kl_weight": kl_weight(self.config, step - 1),
            "warmup_steps": state["warmup_steps"],
            "train_loss": counters["loss_sum"] / updates,
            "train_elbo_nats": counters["neg_elbo_sum"] / updates,
            "skipped_steps": state["skipped_steps"], "train_seconds": state["train_seconds"],
            "images_per_s": self.segment_images / max(now - self.segment_start, 1e-9),
            "compiled": self.step_fn.compiled,
            # Wall time of this process's first update: with train.compile, mostly the compilation.
            **({"first_step_seconds": self.step_fn.first_step_seconds}
               if self.step_fn.first_step_seconds is not None else {}),
            **{f"val_{k}": v[k] for k in v if k != "n_images"},
            # The run's last evaluation: its budget is trained (or its time is up). A search tells a
            # trial that finished from one its scheduler stopped by this (search/store/outcome.py).
            "final": final,
        }
        self.last = metrics
        saved = self._save(metrics) if self.out is not None else None
        self.segment_images, self.segment_start = 0, time.monotonic()
        return metrics, saved

    def _save(self, metrics: dict[str, Any]) -> Path:
        with open(self.out / folders.RUN_METRICS, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.draw_figure:  # Figure 4 from the whole history so far
            plot_kl_per_layer(read_metrics(self.out / folders.RUN_METRICS), self.model.layer_meta(),
                              self.out / folders.RUN_PLOT, self.model.meta_labels())
        return save_checkpoint(self.out / folders.RUN_CHECKPOINT, self.model, self.config,
                               {"dataset": self.train_split.name, "step": self.step, "metrics": metrics},
                               {"optimizer": self.opt.state_dict(), **self.state})
