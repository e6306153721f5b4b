"""The training run: `train(cfg) -> dict`, usable with or without Hydra.

Read top to bottom: build everything from the config (or restore it from a checkpoint), then per epoch
train (steps.py) → validate → checkpoint → log → hooks (early stop, pruning); finally evaluate the best
checkpoint on the test split and write metrics.json. Nothing is lost on the way: checkpoints are atomic,
SIGINT/SIGTERM stop at a step boundary after saving, and a non-finite loss stops the run before it can
overwrite a good checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from trainctl.checkpoint import load_checkpoint, rng_state, save_checkpoint
from trainctl.components import build_dataset, build_loss, build_model, build_optimizer, build_scheduler
from trainctl.components.datasets import check_available
from trainctl.components.schedulers import metric_mode
from trainctl.components.targets import component_name
from trainctl.data import DataBundle, steps_per_epoch
from trainctl.device import select_device
from trainctl.ema import EMA
from trainctl.errors import UserError
from trainctl.logging import TensorBoardLog, console, progress_bar, run_log_file, summary_table
from trainctl.resume import check_same_run, checkpoint_path, restore, run_dir_of
from trainctl.rundir import create_run_dir, write_json
from trainctl.signals import GracefulStop, Interrupted
from trainctl.steps import Trainer, TrainState, batches_per_epoch, evaluate, train_one_epoch
from trainctl.validate import known_metrics, objectives, unknown_metrics, validate

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


def check_metric_names(cfg: DictConfig, data: DataBundle) -> None:
    """`objective` and monitors must name metrics this dataset's task produces (e.g. no val/acc on sine)."""
    known = known_metrics(data.spec.task, data.spec.num_classes > 5)
    for key, value in unknown_metrics(cfg, known)[:1]:
        raise UserError(f"{key}={value!r} is not a metric of this {data.spec.task} run: "
                        f"choose one of {', '.join(known)}")


def _improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def early_stopping(cfg: DictConfig) -> Hook | None:
    spec = cfg.early_stopping
    if spec.patience is None:
        return None
    monitor = spec.monitor or objectives(cfg.objective)[0]
    mode = metric_mode(monitor, spec.mode)
    best: dict[str, Any] = {"value": None, "epoch": 0}

    def hook(end: EpochEnd) -> None:
        if _improved(end.metrics[monitor], best["value"], mode, spec.min_delta):
            best.update(value=end.metrics[monitor], epoch=end.epoch)
        elif end.epoch - best["epoch"] >= spec.patience:
            raise StopTraining(f"early stopping: {monitor} has not improved for {spec.patience} epochs",
                               status="early_stopped")

    return hook


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms for the run (torch errors on ops that have none), restored afterwards."""
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def train(cfg: DictConfig, run_dir: Path | str | None = None, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train as the config says; write checkpoints, TensorBoard events and metrics.json into `run_dir`."""
    validate(cfg)
    check_available(cfg.dataset)
    device = select_device(cfg.device.name)
    checkpoint = None
    if cfg.resume:
        path = checkpoint_path(cfg.resume)
        checkpoint = load_checkpoint(path, map_location=device)
        check_same_run(checkpoint["config"], cfg, path)
        run_dir = run_dir or run_dir_of(path)
    hint = f"{component_name(cfg.model)}-{component_name(cfg.dataset)}".replace("/", "_")
    run_dir = Path(run_dir) if run_dir is not None else create_run_dir(hint=hint)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.cv.folds > 1:
        from trainctl.crossval import cross_validate

        return cross_validate(cfg, run_dir, device, hooks)
    with run_log_file(run_dir), deterministic_mode(cfg.trainer.deterministic):
        return run(cfg, run_dir, device, hooks, checkpoint)


def build_trainer(cfg: DictConfig, data: DataBundle, device: torch.device, stop: GracefulStop, save: Callable) -> Trainer:
    model = build_model(cfg.model, data.spec).to(device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optimizer, model)
    batches = batches_per_epoch(cfg.trainer, len(data.train))
    schedule = build_scheduler(cfg.scheduler, optimizer, cfg.trainer.epochs,
                               steps_per_epoch(batches, cfg.trainer.grad_accum_steps))
    return Trainer(
        cfg=cfg, model=torch.compile(model) if cfg.trainer.compile else model, raw_model=model,
        optimizer=optimizer, schedule=schedule, loss_fn=build_loss(cfg.loss, data.spec).to(device), data=data,
        state=TrainState(), stop=stop, save_mid_epoch=save,
        ema=EMA(model, cfg.trainer.ema_decay) if cfg.trainer.ema_decay else None,
        scaler=torch.amp.GradScaler(device.type) if cfg.trainer.precision == "fp16" else None,
    )


def _checkpoint_state(t: Trainer) -> dict[str, Any]:
    return {
        "model": t.raw_model.state_dict(), "optimizer": t.optimizer.state_dict(), "scheduler": t.schedule.state_dict(),
        "ema": t.ema.state_dict() if t.ema is not None else None,
        "scaler": t.scaler.state_dict() if t.scaler is not None else None,
        **t.state.checkpointed(),
        "rng": rng_state(), "config": OmegaConf.to_container(t.cfg, resolve=True),
    }


def run(cfg: DictConfig, run_dir: Path, device: torch.device, hooks: Sequence[Hook],
        checkpoint: dict[str, Any] | None = None, data: DataBundle | None = None) -> dict[str, Any]:
    """One training run into `run_dir` (a resumed one when `checkpoint` is given)."""
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = (data or build_dataset(cfg.dataset, cfg.seed)).to(device)
    last = run_dir / "checkpoints" / "last.pt"
    for stale in last.parent.glob(".*.tmp-*"):  # a save that a kill cut short; the real files are intact
        stale.unlink(missing_ok=True)
    with GracefulStop() as stop:
        t = build_trainer(cfg, data, device, stop, lambda: save_checkpoint(last, _checkpoint_state(t)))
        check_metric_names(cfg, data)
        if checkpoint is not None:
            restore(checkpoint, model=t.raw_model, optimizer=t.optimizer, schedule=t.schedule, train_state=t.state,
                    ema=t.ema, scaler=t.scaler)
            log.info("resumed %s at epoch %d, batch %d (optimizer step %d)", run_dir, t.state.epoch + 1,
                     t.state.batches_in_epoch, t.state.step)
        log.info("run %s: model=%s (%s params) dataset=%s (train %d / val %d / test %d) device=%s", run_dir,
                 component_name(cfg.model), f"{sum(p.numel() for p in t.raw_model.parameters()):,}",
                 component_name(cfg.dataset), len(data.train), len(data.val), len(data.test), device)
        tensorboard = TensorBoardLog(run_dir, cfg, resumed_at=t.state.epoch + 1 if checkpoint else None)
        all_hooks = [h for h in (*hooks, early_stopping(cfg)) if h is not None]
        try:
            _epochs(t, run_dir, tensorboard, all_hooks)
        except StopTraining as stop_training:
            t.state.status = stop_training.status
            log.info("training stopped after epoch %d: %s", t.state.epoch, stop_training)
        except BaseException:
            tensorboard.close()  # interrupted or failed: what was logged so far reaches the disk
            raise
    return _finish(t, run_dir, tensorboard)


def _epochs(t: Trainer, run_dir: Path, tensorboard: TensorBoardLog, hooks: Sequence[Hook]) -> None:
    cfg = t.cfg
    monitor = cfg.checkpoint.monitor or objectives(cfg.objective)[0]
    mode = metric_mode(monitor, cfg.checkpoint.mode)
    eval_model = t.ema.model if t.ema is not None else t.model
    detect = torch.autograd.detect_anomaly() if cfg.trainer.detect_anomaly else contextlib.nullcontext()
    with progress_bar(cfg.trainer.progress) as bar, detect:
        for epoch in range(t.state.epoch, cfg.trainer.epochs):
            train_metrics, _, throughput = train_one_epoch(t, epoch, bar)
            val_metrics = evaluate(eval_model, t.data.val, t.data, t.loss_fn, cfg.trainer.eval_batch_size, trainer=t)
            metrics = {**{f"train/{k}": v for k, v in train_metrics.items()},
                       **{f"val/{k}": v for k, v in val_metrics.items()}, "lr": t.optimizer.param_groups[0]["lr"]}
            s = t.state
            s.epoch, s.batches_in_epoch, s.partial = epoch + 1, 0, None
            s.history.append({"epoch": epoch + 1, **metrics})
            s.throughputs.append(throughput)
            t.schedule.step_epoch(metrics)
            improved = _improved(metrics[monitor], s.best_value, mode)
            if improved:
                s.best_value, s.best_epoch = metrics[monitor], epoch + 1
            state = _checkpoint_state(t)
            save_checkpoint(run_dir / "checkpoints" / "last.pt", state)
            if improved:
                save_checkpoint(run_dir / "checkpoints" / "best.pt", state)
            tensorboard.scalars({**metrics, "throughput/train_images_per_s": throughput}, epoch + 1)
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "lr")
            log.info("epoch %d/%d  %s | lr %.3g | %s samples/s%s", epoch + 1, cfg.trainer.epochs, shown,
                     metrics["lr"], f"{throughput:,.0f}", "  *best*" if improved else "")
            for hook in hooks:
                hook(EpochEnd(epoch + 1, metrics, run_dir))
            if t.stop.requested:
                raise Interrupted(t.stop.signum)


def _finish(t: Trainer, run_dir: Path, tensorboard: TensorBoardLog) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split (used only here) and write metrics.json."""
    cfg, s = t.cfg, t.state
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt", map_location=t.device)
    model = t.raw_model
    model.load_state_dict(best["model"])
    if t.ema is not None:
        t.ema.load_state_dict(best["ema"])
        model = t.ema.model
    best_epoch_metrics = s.history[s.best_epoch - 1]
    test: dict[str, Any] = {}
    if s.status != "pruned":  # a pruned sweep trial is never reported, so its test pass would be wasted time
        test = evaluate(model, t.data.test, t.data, t.loss_fn, cfg.trainer.eval_batch_size, per_class=True,
                        trainer=t)
    names = objectives(cfg.objective)
    result: dict[str, Any] = {k: v for k, v in best_epoch_metrics.items() if k.startswith("val/")}
    result.update({f"test/{k}": v for k, v in test.items()})
    result.update({k: v for k, v in s.history[-1].items() if k.startswith("train/")})
    result.update({
        "status": s.status,
        "epochs": s.epoch,
        "best_epoch": s.best_epoch,
        "objective": names[0] if isinstance(cfg.objective, str) else names,
        "objective_value": (best_epoch_metrics[names[0]] if isinstance(cfg.objective, str)
                            else [best_epoch_metrics[o] for o in names]),
        "throughput/train_images_per_s": sum(s.throughputs) / max(len(s.throughputs), 1),
        "history": s.history,
    })
    tensorboard.scalars({f"test/{k}": v for k, v in test.items() if isinstance(v, float)}, s.best_epoch)
    tensorboard.close()
    write_json(run_dir / "metrics.json", result)
    console.print(summary_table(result, run_dir))
    shown = "  ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
    log.info("test %s (best epoch %d); outputs in %s", shown, s.best_epoch, run_dir)
    return result
