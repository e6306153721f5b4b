"""Learning-rate schedule builders, stepped once per epoch by the loop.

`build_scheduler(cfg, optimizer, epochs) -> Schedule`: a thin wrapper so the loop can call `step(metrics)` on
every schedule alike (only plateau reads the metrics) and save/restore it through one interface.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from trainctl.registry import Registry

SCHEDULERS: Registry = Registry("scheduler")


def metric_mode(metric: str, mode: str = "auto") -> str:
    """'max' for accuracies, 'min' for losses and errors, unless the user said otherwise."""
    if mode != "auto":
        return mode
    return "max" if metric.rsplit("/", 1)[-1].startswith("acc") else "min"


class Schedule:
    """A learning-rate schedule stepped at the end of each epoch."""

    def __init__(self, scheduler: Any = None, monitor: str | None = None) -> None:
        self.scheduler = scheduler
        self.monitor = monitor

    def step(self, metrics: dict[str, float]) -> None:
        if self.scheduler is None:
            return
        if self.monitor is not None:
            self.scheduler.step(metrics[self.monitor])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


@SCHEDULERS.register("none")
def build_none(cfg: DictConfig, optimizer: torch.optim.Optimizer, epochs: int) -> Schedule:
    """Constant learning rate."""
    return Schedule()


@SCHEDULERS.register("step")
def build_step(cfg: DictConfig, optimizer: torch.optim.Optimizer, epochs: int) -> Schedule:
    """Multiply the learning rate by gamma every step_size epochs."""
    return Schedule(torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma))


@SCHEDULERS.register("cosine")
def build_cosine(cfg: DictConfig, optimizer: torch.optim.Optimizer, epochs: int) -> Schedule:
    """Cosine annealing to eta_min over t_max epochs (default: the whole run)."""
    t_max = cfg.t_max or epochs
    return Schedule(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=cfg.eta_min))


@SCHEDULERS.register("plateau")
def build_plateau(cfg: DictConfig, optimizer: torch.optim.Optimizer, epochs: int) -> Schedule:
    """Decay the learning rate when a monitored metric stops improving."""
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=metric_mode(cfg.monitor, cfg.mode),
        factor=cfg.factor,
        patience=cfg.patience,
        threshold=cfg.threshold,
        min_lr=cfg.min_lr,
    )
    return Schedule(scheduler, monitor=cfg.monitor)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, epochs: int) -> Schedule:
    return SCHEDULERS.get(cfg.name)(cfg, optimizer, epochs)
