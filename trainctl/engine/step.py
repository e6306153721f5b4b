"""The hot loop: one training epoch and one evaluation pass.

Per batch there is no host sync and no per-sample Python. The metrics (`MetricAccumulator`) launch no kernel per
batch while a classifier's outputs are small (they are held and scored together), else one per value into
device-side slots; they are checked for a non-finite loss, and added up, at log points (where `step_end` is
announced), at checkpoints and at the end of the epoch. Gradient accumulation, clipping,
mixed precision, EMA and the graceful-stop check live here; whatever watches training is a callback
(`trainctl.engine.events`).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.components.losses import reduces_by_sum
from trainctl.components.schedulers import Schedule
from trainctl.data.shard import Shard
from trainctl.data.splits import DataBundle, SplitLike, ceil_div
from trainctl.engine.accumulator import MetricAccumulator, pending_batches
from trainctl.engine.checkpoint import CheckpointFiles
from trainctl.engine.clipping import Clipper
from trainctl.engine.cuda_graph import StepGraphs
from trainctl.engine.graph_step import step_graphs, uses_compiled_graphs
from trainctl.engine.distributed import Single
from trainctl.engine.ema import EMA
from trainctl.engine.events import Events, StepEnd
from trainctl.engine.host_sync import SyncGuard, is_sync_error, sync_error
from trainctl.engine.signals import GracefulStop, Interrupted
from trainctl.metrics import REGRESSION

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Logits a training epoch may hold between two log points to score them together (16 MB in float32): no kernel
# per batch for the metrics while outputs are small, as those of the small models that launches bound are.
HOLD_LOGITS = 1 << 22


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the run stops with its last good checkpoint intact."""

    def __init__(self, epoch: int, batch: int, step: int, saved: bool) -> None:
        kept = ("checkpoints/last.pt holds the last good state" if saved
                else "no checkpoint had been saved yet")
        super().__init__(
            f"the loss is not finite (NaN or inf) at epoch {epoch}, batch {batch} of the epoch (optimizer step "
            f"{step}). The run stopped; {kept}. Lower optimizer.lr, set trainer.gradient_clip_val, or find "
            "the first bad operation with trainer.detect_anomaly=true."
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


class StepSettings:
    """How batches run through the model (device, autocast, memory format), shared by training and `eval` so
    a checkpoint is evaluated exactly as validation ran during training. Resolved once: config attribute access
    is not free in the hot loop."""

    def __init__(self, trainer_cfg: DictConfig, device: torch.device) -> None:
        self.device = device
        self.amp_dtype = AMP_DTYPES.get(trainer_cfg.precision)
        self.channels_last = bool(trainer_cfg.channels_last)
        self.compiled_graphs = uses_compiled_graphs(trainer_cfg, device)

    def autocast(self, cache: bool = True) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype, cache_enabled=cache)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The batch as the model takes it; called once per forward pass, training or evaluating."""
        if self.compiled_graphs:
            # Each forward starts a new step of the captured graphs, so outputs of the previous one (already
            # consumed) may be overwritten; without this, evaluation's forward-only calls are refused.
            torch.compiler.cudagraph_mark_step_begin()
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


@dataclass
class Trainer:
    """Everything a run needs, built once by `trainctl.engine.build`; callbacks receive it with every event."""

    cfg: DictConfig
    model: nn.Module  # what runs forward (maybe compiled)
    raw_model: nn.Module  # what owns the parameters and the state dict
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: nn.Module
    data: DataBundle
    settings: StepSettings
    run_dir: Path
    events: Events = field(default_factory=lambda: Events(()))
    stop: GracefulStop = field(default_factory=GracefulStop)
    state: TrainState = field(default_factory=TrainState)
    ema: EMA | None = None
    scaler: torch.amp.GradScaler | None = None
    resumed: bool = False  # continued from a checkpoint
    fit_started: float = 0.0  # perf_counter() at this process's first training step
    eval_forward: nn.Module | None = None  # what evaluates, when not `model` (the model inside DDP)
    dist: Single = field(default_factory=Single)  # this process's place in a data-parallel run
    graphs: StepGraphs | None | bool = None  # whole-step CUDA graphs: None until the first epoch decides, False: off

    def __post_init__(self) -> None:
        trainer = self.cfg.trainer
        self.device = self.settings.device
        self.clipper = (Clipper(trainer.gradient_clip_val, trainer.gradient_clip_algorithm == "norm", self.device)
                        if trainer.gradient_clip_val is not None else None)
        self.checkpoints = CheckpointFiles(self.run_dir)
        self.batches = batches_per_epoch(trainer, len(self.data.train))
        self.sync_progress = lambda: None  # set by the epoch in progress: records its position in `state`
        self.sync_guard = SyncGuard(trainer.sync_debug, self.device)

    @property
    def eval_model(self) -> nn.Module:
        if self.ema is not None:
            return self.ema.model
        return self.eval_forward if self.eval_forward is not None else self.model

    def optimizer_step(self) -> None:
        """The eager loop's step: gradients applied and dropped, the schedule and the counter moved on."""
        self.apply_gradients()
        self.optimizer.zero_grad(set_to_none=True)
        self.finish_step()

    def finish_step(self) -> None:
        """The host's part of an optimizer step, outside any captured graph."""
        self.schedule.step_batch()
        self.state.step += 1

    def apply_gradients(self) -> None:
        """Clipping, the optimizer's step (through the gradient scaler) and the EMA: device work only, which a
        CUDA graph can capture (`trainctl.engine.cuda_graph`)."""
        if self.clipper is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            self.clipper.clip(list(self.raw_model.parameters()))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update()

    def step_graphs(self) -> StepGraphs | None:
        """Whole-step CUDA graphs for this run, decided (and any reason against them logged) once."""
        if self.graphs is None:
            self.graphs = step_graphs(self) or False
        return self.graphs or None


def batches_per_epoch(trainer: DictConfig, n_train: int) -> int:
    """Batches one epoch trains: all of the split, at most `overfit_batches`, and at most `max_steps_per_epoch`
    optimizer steps' worth."""
    caps = [ceil_div(n_train, trainer.batch_size)]
    if trainer.overfit_batches:
        caps.append(trainer.overfit_batches)
    if trainer.max_steps_per_epoch:
        caps.append(trainer.max_steps_per_epoch * trainer.grad_accum_steps)
    return min(caps)


def order_epoch(trainer: DictConfig, epoch: int) -> int:
    """The epoch whose shuffle (and augmentation) an epoch replays: its own, or with `overfit_batches` always
    the first's, so every epoch trains exactly the same batches."""
    return 0 if trainer.overfit_batches else epoch


def evaluated_samples(split: SplitLike, batch_size: int, max_batches: int | None) -> int:
    """Samples an `evaluate` pass covers: the whole split, or its first `max_batches` batches (in order, all
    full but the split's last)."""
    return len(split) if max_batches is None else min(len(split), max_batches * batch_size)


def train_one_epoch(t: Trainer, epoch: int) -> tuple[dict[str, float], float]:
    """Train one epoch from `t.state.batches_in_epoch` on; returns (metrics, samples/s)."""
    cfg = t.cfg.trainer
    t.raw_model.train()
    accum, log_every, limit = cfg.grad_accum_steps, cfg.log_every_n_steps, t.batches
    start = t.state.batches_in_epoch
    # The slots hold the batches between two folds: at most a log interval's, plus those a checkpoint saved
    # unfolded (a resume may bring them with another log interval).
    window = min(log_every, limit) + pending_batches(t.state.partial)
    acc = MetricAccumulator(t.data.spec.task, t.data.spec.num_classes, t.device, full=False,
                            loss_is_sum=reduces_by_sum(t.loss_fn), window=window,
                            hold=0 if t.settings.compiled_graphs else HOLD_LOGITS)
    if t.state.partial is not None:
        acc.load_state(t.state.partial)
    # DDP averages the processes' gradients: right for a mean loss over equal parts of the global batch; a summed
    # loss is scaled back up to the sum over the global batch.
    world_sum = t.dist.world if t.dist.world > 1 and acc.loss_is_sum else 0
    step_at_epoch_start = t.state.step - start // accum
    seen_before, clock = acc.n, time.perf_counter()
    # samples, summed loss and summed score at the previous log point (a resumed epoch starts from its saved sums)
    logged = [acc.n, *acc.running_sums()] if t.state.partial is not None else [acc.n, 0.0, 0.0]
    classify = t.data.spec.task != REGRESSION
    batch = start

    def check_finite() -> None:
        bad = t.dist.first_bad(acc.first_non_finite())  # a host sync: only at log points, checkpoints, epoch ends
        if bad >= 0:
            bad += batch - acc.pending  # the slot's batch of the epoch, from 0
            raise NonFiniteLoss(epoch + 1, bad + 1, step_at_epoch_start + bad // accum + 1,
                                saved=t.checkpoints.path("last").is_file())

    def sync_progress() -> None:
        check_finite()  # never record (and so never save) a state that has seen a non-finite loss
        t.state.batches_in_epoch, t.state.partial = batch, acc.state()

    t.sync_progress = sync_progress
    batches = t.dist.shard(t.data.train).shuffled(cfg.batch_size, t.data.train_transform, t.cfg.seed, order_epoch(cfg, epoch),
                                    start_step=start)
    settings, step_listeners, guard = t.settings, t.events.step_listeners, t.sync_guard
    graphs = t.step_graphs()
    guard.arm()  # trainer.sync_debug: from here to the end of the epoch, only the `allowed` stretches may sync
    try:
        for x, y in batches:
            if graphs is not None:  # the same step, captured once and replayed (trainctl.engine.cuda_graph)
                steps = (batch + 1) % accum == 0 or batch + 1 == limit
                acc.record_values(*graphs.run(x, y, batch % accum == 0, steps), y.shape[0])
                batch += 1
                if steps:
                    t.finish_step()
            else:
                with settings.autocast():
                    out = t.model(settings.prepare(x))
                    loss = t.loss_fn(out, y)
                scaled = loss / accum if accum > 1 else loss
                if world_sum:
                    scaled = scaled * world_sum
                (t.scaler.scale(scaled) if t.scaler is not None else scaled).backward()
                acc.update(out, y, loss)
                batch += 1
                steps = batch % accum == 0 or batch == limit
                if steps:
                    t.optimizer_step()
            if steps:
                if step_listeners:  # empty unless a callback asked for every step
                    with guard.allowed():
                        t.events.train_step(t)
                if t.stop.requested:
                    guard.disarm()
                    sync_progress()
                    raise Interrupted(t.stop.signum)
            if batch % log_every == 0:
                with guard.allowed():
                    check_finite()
                    acc.fold()
                    loss_sum, score_sum = acc.running_sums()
                    samples = max(acc.n - logged[0], 1)
                    t.events.emit("on_step_end", t, StepEnd(
                        epoch + 1, batch, limit, t.state.step, (loss_sum - logged[1]) / samples,
                        t.optimizer.param_groups[0]["lr"], (acc.n - seen_before) / (time.perf_counter() - clock),
                        (score_sum - logged[2]) / samples if classify else None))
                    logged = [acc.n, loss_sum, score_sum]
            if batch >= limit:
                break
    except RuntimeError as error:
        if is_sync_error(error):
            raise sync_error(error) from None
        raise
    finally:
        guard.disarm()
    check_finite()
    t.sync_progress = lambda: None
    seconds = time.perf_counter() - clock
    throughput = (acc.n - seen_before) * t.dist.world / max(seconds, 1e-9)
    t.dist.reduce(acc)
    return {**acc.compute(), **(t.clipper.epoch_metrics() if t.clipper is not None else {})}, throughput


@torch.inference_mode()
def evaluate(model: nn.Module, split: SplitLike, data: DataBundle, loss_fn: nn.Module, batch_size: int,
             settings: StepSettings, per_class: bool = False, max_batches: int | None = None,
             reduce: Callable[[MetricAccumulator], None] | None = None) -> dict[str, Any]:
    """The task's metrics over a split (its first `max_batches` batches when given), with one host sync at the
    end. A process's shard of a split (data-parallel) evaluates its batches; `all_sum` adds up the processes'
    sums (`reduce`), so every sample counts once."""
    model.eval()
    acc = MetricAccumulator(data.spec.task, data.spec.num_classes, settings.device, full=True,
                            loss_is_sum=reduces_by_sum(loss_fn))
    batches = (split.ordered(batch_size, data.eval_transform, max_batches) if isinstance(split, Shard)
               else itertools.islice(split.ordered(batch_size, data.eval_transform), max_batches))
    for x, y in batches:
        with settings.autocast():
            out = model(settings.prepare(x))
            loss = loss_fn(out, y)
        acc.update(out.float(), y, loss.float())
    if reduce is not None:
        reduce(acc)
    result: dict[str, Any] = acc.compute()
    if per_class and data.spec.task == "classification":
        names = data.spec.class_names or tuple(map(str, range(data.spec.num_classes)))
        result["acc_per_class"] = dict(zip(names, acc.per_class_accuracy()))
    return result
