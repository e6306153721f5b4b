"""The hot loop: one training epoch and one evaluation pass.

Per batch there is no host sync and no per-sample Python. Metrics, and the index of the first batch whose loss
was not finite, accumulate in device tensors; they are read at log points, at checkpoints and at the end of the
epoch. Gradient accumulation, clipping, mixed precision, EMA and the graceful-stop check all live here.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl import faults
from trainctl.components.schedulers import Schedule
from trainctl.data import DataBundle, SplitLike, steps_per_epoch
from trainctl.ema import EMA
from trainctl.metrics import MetricAccumulator
from trainctl.signals import GracefulStop, Interrupted

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the run stops with its last good checkpoint intact."""

    def __init__(self, epoch: int, batch: int, step: int) -> None:
        super().__init__(
            f"the loss is not finite (NaN or inf) at epoch {epoch}, batch {batch} of the epoch (around optimizer "
            f"step {step}). The run stopped; checkpoints/last.pt holds the last good state. Lower optimizer.lr, "
            "set trainer.gradient_clip_val, or find the first bad operation with trainer.detect_anomaly=true."
        )


@dataclass
class TrainState:
    """Progress counters; everything here goes into checkpoints."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps over the whole run
    batches_in_epoch: int = 0  # batches already trained in the unfinished epoch (mid-epoch checkpoints)
    partial: dict[str, Any] | None = None  # that epoch's metric sums so far
    best_value: float | None = None
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    throughputs: list[float] = field(default_factory=list)
    status: str = "completed"  # how this process's run ended; not saved

    def checkpointed(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "status"}

    def restore(self, saved: dict[str, Any]) -> None:
        for name in self.checkpointed():
            if name in saved:  # older checkpoints may lack newer counters
                setattr(self, name, saved[name])


@dataclass
class Trainer:
    """Everything one epoch needs; built once per run by the loop."""

    cfg: DictConfig
    model: nn.Module  # what runs forward (maybe compiled)
    raw_model: nn.Module  # what owns the parameters and the state dict
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: nn.Module
    data: DataBundle
    state: TrainState
    stop: GracefulStop
    save_mid_epoch: Callable[[], None]
    ema: EMA | None = None
    scaler: torch.amp.GradScaler | None = None

    def __post_init__(self) -> None:
        # Settings the hot loop reads every step, resolved once: config attribute access is not free.
        trainer = self.cfg.trainer
        self.device = next(self.raw_model.parameters()).device
        self.amp_dtype = AMP_DTYPES.get(trainer.precision)
        self.channels_last = bool(trainer.channels_last)
        self.clip_val = trainer.gradient_clip_val
        self.clip_by_norm = trainer.gradient_clip_algorithm == "norm"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def optimizer_step(self) -> None:
        if self.clip_val is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            params = self.raw_model.parameters()
            if self.clip_by_norm:
                nn.utils.clip_grad_norm_(params, self.clip_val)
            else:
                nn.utils.clip_grad_value_(params, self.clip_val)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step_batch()
        if self.ema is not None:
            self.ema.update()
        self.state.step += 1


def _check_finite(first_bad: torch.Tensor, epoch: int, state: TrainState) -> None:
    bad = int(first_bad)  # a host sync: only at log points, checkpoints and epoch ends
    if bad >= 0:
        raise NonFiniteLoss(epoch + 1, bad + 1, state.step)


def batches_per_epoch(trainer: DictConfig, n_train: int) -> int:
    """Batches one epoch trains: all of the split, or `max_steps_per_epoch` optimizer steps' worth."""
    total = steps_per_epoch(n_train, trainer.batch_size)
    if trainer.max_steps_per_epoch:
        return min(total, trainer.max_steps_per_epoch * trainer.grad_accum_steps)
    return total


def train_one_epoch(t: Trainer, epoch: int, bar: Any) -> tuple[dict[str, float], int, float]:
    """Train one epoch from `t.state.batches_in_epoch` on; returns (metrics, optimizer steps, samples/s)."""
    cfg = t.cfg.trainer
    t.raw_model.train()
    accum, log_every, save_every = cfg.grad_accum_steps, cfg.log_every_n_steps, t.cfg.checkpoint.every_n_steps
    total = steps_per_epoch(len(t.data.train), cfg.batch_size)
    limit = batches_per_epoch(cfg, len(t.data.train))
    start = t.state.batches_in_epoch
    acc = MetricAccumulator(t.data.spec.task, t.data.spec.num_classes, t.device, full=False)
    if t.state.partial is not None:
        acc.load_state(t.state.partial)
    first_bad = torch.full((), -1, dtype=torch.long, device=t.device)
    nan_batch = faults.nan_batch()
    task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=limit, completed=start, loss="-", rate="-")
    steps_before, seen_before, clock = t.state.step, acc.n, time.perf_counter()
    batch = start
    for x, y in t.data.train.shuffled(cfg.batch_size, t.data.train_transform, t.cfg.seed, epoch, start_step=start):
        with t.autocast():
            out = t.model(t.prepare(x))
            loss = t.loss_fn(out, y)
        if nan_batch is not None and nan_batch == epoch * total + batch:  # test-only fault, run-wide count
            loss = loss * float("nan")
        first_bad = torch.where(torch.isfinite(loss) | (first_bad >= 0), first_bad, batch)
        scaled = loss / accum if accum > 1 else loss
        (t.scaler.scale(scaled) if t.scaler is not None else scaled).backward()
        acc.update(out, y, loss)
        batch += 1
        if batch % accum == 0 or batch == limit:
            t.optimizer_step()
            faults.after_step(t.state.step)
            if (save_every and t.state.step % save_every == 0) or t.stop.requested:
                _check_finite(first_bad, epoch, t.state)
                t.state.batches_in_epoch, t.state.partial = batch, acc.state()
                t.save_mid_epoch()
                if t.stop.requested:
                    raise Interrupted(t.stop.signum)
        if batch % log_every == 0:
            _check_finite(first_bad, epoch, t.state)
            rate = (acc.n - seen_before) / (time.perf_counter() - clock)
            bar.update(task, completed=batch, loss=f"{acc.loss_sum.item() / acc.n:.4f}", rate=f"{rate:,.0f}")
        if batch >= limit:
            break
    _check_finite(first_bad, epoch, t.state)
    metrics = acc.compute()
    seconds = time.perf_counter() - clock
    bar.remove_task(task)
    return metrics, t.state.step - steps_before, (acc.n - seen_before) / max(seconds, 1e-9)


@torch.inference_mode()
def evaluate(model: nn.Module, split: SplitLike, data: DataBundle, loss_fn: nn.Module, batch_size: int,
             per_class: bool = False, trainer: Trainer | None = None) -> dict[str, Any]:
    """The task's metrics over a split, with one host sync at the end."""
    model.eval()
    device = next(model.parameters()).device
    acc = MetricAccumulator(data.spec.task, data.spec.num_classes, device, full=True)
    autocast = trainer.autocast if trainer is not None else contextlib.nullcontext
    prepare = trainer.prepare if trainer is not None else (lambda x: x)
    for x, y in split.ordered(batch_size, data.eval_transform):
        with autocast():
            out = model(prepare(x))
            loss = loss_fn(out, y)
        acc.update(out.float(), y, loss.float())
    result: dict[str, Any] = acc.compute()
    if per_class and data.spec.task == "classification":
        names = data.spec.class_names or tuple(map(str, range(data.spec.num_classes)))
        result["acc_per_class"] = dict(zip(names, acc.per_class_accuracy()))
    return result
