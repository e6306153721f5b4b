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
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainctl.checkpoint import load_checkpoint, rng_state, save_checkpoint
from trainctl.components import build_dataset, build_loss, build_model, build_optimizer, build_scheduler
from trainctl.components.datasets import check_available
from trainctl.components.schedulers import Schedule, metric_mode
from trainctl.data import DataBundle, Split, epoch_order, eval_batches, steps_per_epoch, train_batches
from trainctl.device import select_device
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


Hook = Callable[[EpochEnd], None]


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken over the whole run
    best_value: float | None = None
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def _improved(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, data: DataBundle, loss_fn: nn.Module, batch_size: int) -> dict[str, float]:
    """Mean loss and accuracy over a split, with one host sync at the end."""
    model.eval()
    loss_sum = torch.zeros((), device=split.x.device)
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    for x, y in eval_batches(split, batch_size, data.transform):
        out = model(x)
        loss_sum += loss_fn(out, y) * y.shape[0]
        correct += (out.argmax(dim=1) == y).sum()
    n = len(split)
    return {"loss": loss_sum.item() / n, "acc": correct.item() / n}


def train_one_epoch(
    model: nn.Module, data: DataBundle, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
    cfg: DictConfig, epoch: int, bar: Any,
) -> tuple[dict[str, float], int, float]:
    """One pass over the shuffled training split; returns (metrics, steps, seconds)."""
    model.train()
    device = data.train.x.device
    order = epoch_order(len(data.train), cfg.seed, epoch, device)
    total = steps_per_epoch(len(data.train), cfg.trainer.batch_size)
    max_steps = min(total, cfg.trainer.max_steps_per_epoch or total)
    task = bar.add_task(f"epoch {epoch + 1}/{cfg.trainer.epochs}", total=max_steps, loss="-", rate="-")
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen, steps, start = 0, 0, time.perf_counter()
    for x, y in train_batches(data.train, cfg.trainer.batch_size, data.transform, order):
        out = model(x)
        loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss_sum += loss.detach() * y.shape[0]
            correct += (out.argmax(dim=1) == y).sum()
        seen += y.shape[0]
        steps += 1
        if steps % cfg.trainer.log_every_n_steps == 0:  # the only per-epoch host syncs before the end
            rate = seen / (time.perf_counter() - start)
            bar.update(task, completed=steps, loss=f"{loss_sum.item() / seen:.4f}", rate=f"{rate:,.0f}")
        if steps >= max_steps:
            break
    metrics = {"loss": loss_sum.item() / seen, "acc": correct.item() / seen}
    seconds = time.perf_counter() - start
    bar.remove_task(task)
    return metrics, steps, seen / seconds


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


def train(cfg: DictConfig, run_dir: Path | str | None = None, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train as the config says; write checkpoints, TensorBoard events and metrics.json into `run_dir`."""
    validate(cfg)
    check_available(cfg.dataset)
    device = select_device(cfg.device.name)
    run_dir = Path(run_dir) if run_dir is not None else create_run_dir(hint=f"{cfg.model.name}-{cfg.dataset.name}")
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_log_file(run_dir):
        return _train(cfg, run_dir, device, hooks)


def _train(cfg: DictConfig, run_dir: Path, device: torch.device, hooks: Sequence[Hook]) -> dict[str, Any]:
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = build_dataset(cfg.dataset, cfg.seed).to(device)
    model = build_model(cfg.model, data.spec).to(device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    schedule = build_scheduler(cfg.scheduler, optimizer, cfg.trainer.epochs)
    loss_fn = build_loss(cfg.loss, data.spec).to(device)
    monitor, mode = cfg.checkpoint.monitor, metric_mode(cfg.checkpoint.monitor, cfg.checkpoint.mode)
    ckpt_dir = run_dir / "checkpoints"
    log.info(
        "run %s: model=%s (%s params) dataset=%s (train %d / val %d / test %d) device=%s",
        run_dir, cfg.model.name, f"{sum(p.numel() for p in model.parameters()):,}", cfg.dataset.name,
        len(data.train), len(data.val), len(data.test), device,
    )
    progress = Progress()
    tensorboard = TensorBoardLog(run_dir, cfg)
    throughputs: list[float] = []
    try:
        with progress_bar(cfg.trainer.progress) as bar:
            for epoch in range(progress.epoch, cfg.trainer.epochs):
                train_metrics, steps, throughput = train_one_epoch(model, data, loss_fn, optimizer, cfg, epoch, bar)
                val_metrics = evaluate(model, data.val, data, loss_fn, cfg.trainer.eval_batch_size)
                metrics = {f"train/{k}": v for k, v in train_metrics.items()}
                metrics.update({f"val/{k}": v for k, v in val_metrics.items()})
                metrics["lr"] = optimizer.param_groups[0]["lr"]
                throughputs.append(throughput)
                progress.epoch, progress.step = epoch + 1, progress.step + steps
                progress.history.append({"epoch": epoch + 1, **metrics})
                schedule.step(metrics)
                improved = _improved(metrics[monitor], progress.best_value, mode)
                if improved:
                    progress.best_value, progress.best_epoch = metrics[monitor], epoch + 1
                state = _checkpoint_state(model, optimizer, schedule, progress, cfg)
                save_checkpoint(ckpt_dir / "last.pt", state)
                if improved:
                    save_checkpoint(ckpt_dir / "best.pt", state)
                tensorboard.scalars({**metrics, "throughput/train_images_per_s": throughput}, epoch + 1)
                log.info(
                    "epoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f | %s img/s%s",
                    epoch + 1, cfg.trainer.epochs, metrics["train/loss"], metrics["train/acc"],
                    metrics["val/loss"], metrics["val/acc"], f"{throughput:,.0f}", "  *best*" if improved else "",
                )
                for hook in hooks:
                    hook(EpochEnd(epoch + 1, metrics, run_dir))
    except StopTraining as stop:
        log.info("training stopped after epoch %d: %s", progress.epoch, stop)
    return _finish(cfg, run_dir, model, data, loss_fn, progress, throughputs, tensorboard)


def _finish(cfg, run_dir, model, data, loss_fn, progress: Progress, throughputs, tensorboard) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split (used only here) and write metrics.json."""
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt", map_location=data.train.x.device)
    model.load_state_dict(best["model"])
    best_epoch_metrics = progress.history[progress.best_epoch - 1]
    test = evaluate(model, data.test, data, loss_fn, cfg.trainer.eval_batch_size)
    result: dict[str, Any] = {k: v for k, v in best_epoch_metrics.items() if k.startswith("val/")}
    result.update({f"test/{k}": v for k, v in test.items()})
    result.update({
        "train/loss": progress.history[-1]["train/loss"],
        "train/acc": progress.history[-1]["train/acc"],
        "epochs": progress.epoch,
        "best_epoch": progress.best_epoch,
        "objective": cfg.objective,
        "objective_value": best_epoch_metrics[cfg.objective],
        "throughput/train_images_per_s": sum(throughputs) / max(len(throughputs), 1),
        "history": progress.history,
    })
    tensorboard.scalars({f"test/{k}": v for k, v in test.items()}, progress.best_epoch)
    tensorboard.close()
    write_json(run_dir / "metrics.json", result)
    console.print(summary_table(result, run_dir))
    log.info("test loss %.4f acc %.4f (best epoch %d); outputs in %s",
             test["loss"], test["acc"], progress.best_epoch, run_dir)
    return result
