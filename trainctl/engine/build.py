"""Building a run from its config: the one place both `train` and `eval` get their model, loss and step
settings from, so a checkpoint is evaluated exactly as validation ran during training."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.components import build_loss, build_model, build_optimizer, build_scheduler
from trainctl.data.splits import DataBundle, ceil_div
from trainctl.engine.ema import EMA
from trainctl.engine.events import Callback, Events
from trainctl.engine.finetune import prepare_model
from trainctl.engine.signals import GracefulStop
from trainctl.engine.step import StepSettings, Trainer, batches_per_epoch


@dataclass
class ModelParts:
    """What evaluating a config needs: the model on its device, the loss, and how batches run."""

    model: nn.Module
    loss_fn: nn.Module
    settings: StepSettings


def build_model_parts(cfg: DictConfig, data: DataBundle, device: torch.device) -> ModelParts:
    model = build_model(cfg.model, data.spec).to(device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return ModelParts(model, build_loss(cfg.loss, data.spec).to(device), StepSettings(cfg.trainer, device))


def build_trainer(cfg: DictConfig, data: DataBundle, device: torch.device, run_dir: Path,
                  callbacks: Sequence[Callback] = (), stop: GracefulStop | None = None) -> Trainer:
    parts = build_model_parts(cfg, data, device)
    model = parts.model
    prepare_model(cfg, model, device)  # init_from weights, model.freeze: before the optimizer and the EMA copy
    optimizer = build_optimizer(cfg.optimizer, model)
    batches = batches_per_epoch(cfg.trainer, len(data.train))
    schedule = build_scheduler(cfg.scheduler, optimizer, cfg.trainer.epochs,
                               ceil_div(batches, cfg.trainer.grad_accum_steps))
    return Trainer(
        cfg=cfg, model=torch.compile(model) if cfg.trainer.compile else model, raw_model=model,
        optimizer=optimizer, schedule=schedule, loss_fn=parts.loss_fn, data=data, settings=parts.settings,
        run_dir=run_dir, events=Events(callbacks), stop=stop or GracefulStop(),
        ema=EMA(model, cfg.trainer.ema_decay) if cfg.trainer.ema_decay else None,
        scaler=torch.amp.GradScaler(device.type) if cfg.trainer.precision == "fp16" else None,
    )


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
