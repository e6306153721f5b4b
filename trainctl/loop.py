"""The training loop: `train(cfg) -> dict`, usable with or without Hydra.

Read top to bottom: build everything from the config, then per epoch train steps → validate → log → checkpoint
→ hooks (early stop, pruning); finally evaluate the best checkpoint on the test split and write metrics.json.
The hot loop does no per-sample Python work and no per-step host sync: metrics accumulate in device tensors
and are read only every `trainer.log_every_n_steps` steps and at the end of the epoch.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from trainctl.checkpoint import load_checkpoint, rng_state, save_checkpoint
from trainctl.components import build_dataset, build_loss, build_model, build_optimizer, build_scheduler
from trainctl.components.datasets import check_available
from trainctl.components.schedulers import Schedule, metric_mode
from trainctl.components.targets import component_name
from trainctl.data import DataBundle, SplitLike, steps_per_epoch
from trainctl.device import select_device
from trainctl.errors import UserError
from trainctl.metrics import MetricAccumulator, metric_names
from trainctl.logging import TensorBoardLog, console, progress_bar, run_log_file, summary_table
from trainctl.rundir import create_run_dir, write_json
from trainctl.validate import validate

log = logging.getLogger("trainctl")


@dataclass
class EpochEnd:
    """What hooks see after each epoch; a hook stops training by raising StopTraining."""

    epoch: int  # epochs completed, from 1
    metrics: dict[str, float]
    run_dir: Path


class StopTraining(Exception):
    """Raised by a hook to end training early (early stopping, a pruned sweep trial)."""

    def __init__(self, reason: str, status: str = "stopped") -> None:
        super().__init__(reason)
        self.status = status  # written to metrics.json: "pruned", "early_stopped", ...


Hook = Callable[[EpochEnd], None]


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken over the whole run
    best_value: float | None = None
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "completed"


def _improved(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


@torch.inference_mode()
def evaluate(model: nn.Module, split: SplitLike, data: DataBundle, loss_fn: nn.Module, batch_size: int,
             per_class: bool = False) -> dict[str, Any]:
    """The task's metrics over a split, with one host sync at the end."""
    model.eval()
    device = next(model.parameters()).device
    acc = MetricAccumulator(data.spec.task, data.spec.num_classes, device, full=True)
    for x, y in split.ordered(batch_size, data.eval_transform):
        out = model(x)
        acc.update(out, y, loss_fn(out, y))
    result: dict[str, Any] = acc.compute()
    if per_class and data.spec.task == "classification":
        result["acc_per_class"] = dict(zip(data.spec.class_names or map(str, range(data.spec.num_classes)),
                                           acc.per_class_accuracy()))
    return result


def train_one_epoch(
    model: nn.Module, data: DataBundle, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
    cfg: DictConfig, epoch: int, bar: Any,
) -> tuple[dict[str, float], int, float]:
    """One pass over the shuffled training split; returns (metrics, steps, images per second)."""
    model.train()
    device = next(model.parameters()).device
    total = steps_per_epoch(len(data.train), cfg.trainer.batch_size)
    max_steps = min(total, cfg.trainer.max_steps_per_epoch or total)
    task = bar.add_task(f"epoch {epoch + 1}/{cfg.trainer.epochs}", total=max_steps, loss="-", rate="-")
    acc = MetricAccumulator(data.spec.task, data.spec.num_classes, device, full=False)
    steps, start = 0, time.perf_counter()
    for x, y in data.train.shuffled(cfg.trainer.batch_size, data.train_transform, cfg.seed, epoch):
        out = model(x)
        loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step_batch()
        acc.update(out, y, loss)
        steps += 1
        if steps % cfg.trainer.log_every_n_steps == 0:  # the only per-epoch host syncs before the end
            rate = acc.n / (time.perf_counter() - start)
            bar.update(task, completed=steps, loss=f"{acc.loss_sum.item() / acc.n:.4f}", rate=f"{rate:,.0f}")
        if steps >= max_steps:
            break
    metrics = acc.compute()
    seconds = time.perf_counter() - start
    bar.remove_task(task)
    return metrics, steps, acc.n / seconds


def _checkpoint_state(model, optimizer, schedule: Schedule, progress: Progress, cfg: DictConfig) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule.state_dict(),
        "epoch": progress.epoch,
        "step": progress.step,
        "best_value": progress.best_value,
        "best_epoch": progress.best_epoch,
        "history": progress.history,
        "rng": rng_state(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def check_metric_names(cfg: DictConfig, data: DataBundle) -> None:
    """`objective` and monitors must name metrics this dataset's task produces (e.g. no val/acc on sine)."""
    names = metric_names(data.spec.task, data.spec.num_classes > 5)
    known = [f"val/{n}" for n in names] + [f"train/{n}" for n in names[:2]]
    for key in ("objective", "checkpoint.monitor", "scheduler.monitor"):
        for value in objectives(OmegaConf.select(cfg, key)):
            if value not in known:
                raise UserError(f"{key}={value!r} is not a metric of this {data.spec.task} run: "
                                f"choose one of {', '.join(known)}")


def objectives(value: Any) -> list[str]:
    """`objective` as a list: one metric, or several for a multi-objective sweep."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple, ListConfig)) else [str(value)]


def train(cfg: DictConfig, run_dir: Path | str | None = None, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train as the config says; write checkpoints, TensorBoard events and metrics.json into `run_dir`."""
    validate(cfg)
    check_available(cfg.dataset)
    device = select_device(cfg.device.name)
    hint = f"{component_name(cfg.model)}-{component_name(cfg.dataset)}".replace("/", "_")
    run_dir = Path(run_dir) if run_dir is not None else create_run_dir(hint=hint)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_log_file(run_dir):
        return _train(cfg, run_dir, device, hooks)


def _train(cfg: DictConfig, run_dir: Path, device: torch.device, hooks: Sequence[Hook]) -> dict[str, Any]:
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = build_dataset(cfg.dataset, cfg.seed).to(device)
    model = build_model(cfg.model, data.spec).to(device)
    optimizer = build_optimizer(cfg.optimizer, model)
    steps = min(steps_per_epoch(len(data.train), cfg.trainer.batch_size),
                cfg.trainer.max_steps_per_epoch or len(data.train))
    schedule = build_scheduler(cfg.scheduler, optimizer, cfg.trainer.epochs, steps)
    loss_fn = build_loss(cfg.loss, data.spec).to(device)
    check_metric_names(cfg, data)
    monitor = cfg.checkpoint.monitor or objectives(cfg.objective)[0]
    mode = metric_mode(monitor, cfg.checkpoint.mode)
    ckpt_dir = run_dir / "checkpoints"
    log.info(
        "run %s: model=%s (%s params) dataset=%s (train %d / val %d / test %d) device=%s",
        run_dir, component_name(cfg.model), f"{sum(p.numel() for p in model.parameters()):,}",
        component_name(cfg.dataset),
        len(data.train), len(data.val), len(data.test), device,
    )
    progress = Progress()
    tensorboard = TensorBoardLog(run_dir, cfg)
    throughputs: list[float] = []
    try:
        with progress_bar(cfg.trainer.progress) as bar:
            for epoch in range(progress.epoch, cfg.trainer.epochs):
                train_metrics, steps, throughput = train_one_epoch(
                    model, data, loss_fn, optimizer, schedule, cfg, epoch, bar)
                val_metrics = evaluate(model, data.val, data, loss_fn, cfg.trainer.eval_batch_size)
                metrics = {f"train/{k}": v for k, v in train_metrics.items()}
                metrics.update({f"val/{k}": v for k, v in val_metrics.items()})
                metrics["lr"] = optimizer.param_groups[0]["lr"]
                throughputs.append(throughput)
                progress.epoch, progress.step = epoch + 1, progress.step + steps
                progress.history.append({"epoch": epoch + 1, **metrics})
                schedule.step_epoch(metrics)
                improved = _improved(metrics[monitor], progress.best_value, mode)
                if improved:
                    progress.best_value, progress.best_epoch = metrics[monitor], epoch + 1
                state = _checkpoint_state(model, optimizer, schedule, progress, cfg)
                save_checkpoint(ckpt_dir / "last.pt", state)
                if improved:
                    save_checkpoint(ckpt_dir / "best.pt", state)
                tensorboard.scalars({**metrics, "throughput/train_images_per_s": throughput}, epoch + 1)
                shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "lr")
                log.info("epoch %d/%d  %s | lr %.3g | %s samples/s%s", epoch + 1, cfg.trainer.epochs, shown,
                         metrics["lr"], f"{throughput:,.0f}", "  *best*" if improved else "")
                for hook in hooks:
                    hook(EpochEnd(epoch + 1, metrics, run_dir))
    except StopTraining as stop:
        progress.status = stop.status
        log.info("training stopped after epoch %d: %s", progress.epoch, stop)
    return _finish(cfg, run_dir, model, data, loss_fn, progress, throughputs, tensorboard)


def _finish(cfg, run_dir, model, data, loss_fn, progress: Progress, throughputs, tensorboard) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split (used only here) and write metrics.json."""
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt", map_location=data.train.x.device)
    model.load_state_dict(best["model"])
    best_epoch_metrics = progress.history[progress.best_epoch - 1]
    test = evaluate(model, data.test, data, loss_fn, cfg.trainer.eval_batch_size, per_class=True)
    result: dict[str, Any] = {k: v for k, v in best_epoch_metrics.items() if k.startswith("val/")}
    result.update({f"test/{k}": v for k, v in test.items()})
    result.update({k: v for k, v in progress.history[-1].items() if k.startswith("train/")})
    result.update({
        "status": progress.status,
        "epochs": progress.epoch,
        "best_epoch": progress.best_epoch,
        "objective": objectives(cfg.objective)[0] if isinstance(cfg.objective, str) else objectives(cfg.objective),
        "objective_value": (best_epoch_metrics[cfg.objective] if isinstance(cfg.objective, str)
                            else [best_epoch_metrics[o] for o in objectives(cfg.objective)]),
        "throughput/train_images_per_s": sum(throughputs) / max(len(throughputs), 1),
        "history": progress.history,
    })
    tensorboard.scalars({f"test/{k}": v for k, v in test.items() if isinstance(v, float)}, progress.best_epoch)
    tensorboard.close()
    write_json(run_dir / "metrics.json", result)
    console.print(summary_table(result, run_dir))
    shown = "  ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
    log.info("test %s (best epoch %d); outputs in %s", shown, progress.best_epoch, run_dir)
    return result
