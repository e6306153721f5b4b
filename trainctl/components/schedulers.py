"""Learning-rate schedules: `build_scheduler(cfg, optimizer, epochs, steps_per_epoch) -> Schedule`.

`Schedule` gives the loop one interface for all of them: `step_batch()` after every optimizer step and
`step_epoch(metrics)` after every validation. It steps each torch scheduler at the rate it needs (onecycle per
batch, the rest per epoch) and applies the optional linear warm-up on top of any of them by scaling the lr the
scheduler chose, then restoring it, so the scheduler never sees the warm-up.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from trainctl.config.targets import has_target, instantiate_target
from trainctl.components.formula import compile_formula
from trainctl.errors import UserError
from trainctl.metrics import metric_mode
from trainctl.registry import Registry

SCHEDULERS: Registry = Registry("scheduler")


class Schedule:
    def __init__(self, optimizer: torch.optim.Optimizer, scheduler: Any = None, per_batch: bool = False,
                 monitor: str | None = None, warmup_steps: int = 0, warmup_start_factor: float = 1.0) -> None:
        self.optimizer, self.scheduler, self.per_batch, self.monitor = optimizer, scheduler, per_batch, monitor
        self.warmup_steps, self.warmup_start_factor = warmup_steps, warmup_start_factor
        self.steps = 0
        self.inner_lrs = [g["lr"] for g in optimizer.param_groups]
        self._scale()

    def _factor(self) -> float:
        if self.steps >= self.warmup_steps:
            return 1.0
        return self.warmup_start_factor + (1 - self.warmup_start_factor) * self.steps / self.warmup_steps

    def _unscale(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.inner_lrs):
            group["lr"] = lr

    def _scale(self) -> None:
        self.inner_lrs = [g["lr"] for g in self.optimizer.param_groups]
        factor = self._factor()
        if factor != 1.0:
            for group in self.optimizer.param_groups:
                group["lr"] *= factor

    def step_batch(self) -> None:
        if not self.per_batch and self.steps > self.warmup_steps:
            self.steps += 1  # nothing to do: keep the hot loop cheap
            return
        self._unscale()
        self.steps += 1
        if self.per_batch:
            self.scheduler.step()
        self._scale()

    def step_epoch(self, metrics: dict[str, float]) -> None:
        if self.scheduler is None or self.per_batch:
            return
        self._unscale()
        if self.monitor is not None:
            self.scheduler.step(metrics[self.monitor])
        else:
            self.scheduler.step()
        self._scale()

    def state_dict(self) -> dict[str, Any]:
        inner = self.scheduler.state_dict() if self.scheduler is not None else {}
        return {"scheduler": inner, "steps": self.steps, "inner_lrs": list(self.inner_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.steps, self.inner_lrs = state["steps"], list(state["inner_lrs"])


def _schedule(cfg: DictConfig, optimizer, scheduler=None, **kwargs: Any) -> Schedule:
    return Schedule(optimizer, scheduler, warmup_steps=cfg.warmup_steps,
                    warmup_start_factor=cfg.warmup_start_factor, **kwargs)


@SCHEDULERS.register("none")
def build_none(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """Constant learning rate (after the optional warm-up)."""
    return _schedule(cfg, optimizer)


@SCHEDULERS.register("step")
def build_step(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """Multiply the learning rate by gamma every step_size epochs."""
    return _schedule(cfg, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma))


@SCHEDULERS.register("multistep")
def build_multistep(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """Multiply the learning rate by gamma at each milestone epoch."""
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
    return _schedule(cfg, optimizer, scheduler)


@SCHEDULERS.register("exponential")
def build_exponential(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """Multiply the learning rate by gamma every epoch."""
    return _schedule(cfg, optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, cfg.gamma))


@SCHEDULERS.register("cosine")
def build_cosine(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """Cosine annealing to eta_min over t_max epochs (default: the whole run)."""
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.t_max or epochs, eta_min=cfg.eta_min)
    return _schedule(cfg, optimizer, scheduler)


@SCHEDULERS.register("plateau")
def build_plateau(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """Decay the learning rate when a monitored metric stops improving."""
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=metric_mode(cfg.monitor, cfg.mode), factor=cfg.factor, patience=cfg.patience,
        threshold=cfg.threshold, min_lr=cfg.min_lr,
    )
    return _schedule(cfg, optimizer, scheduler, monitor=cfg.monitor)


# Every epoch of a run this long or shorter has its factor checked at build time; a longer run (an absurd
# config) is checked as it goes, so the check itself can never be what hangs.
MAX_CHECKED_EPOCHS = 100_000


@SCHEDULERS.register("lambda")
def build_lambda(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """Learning-rate factor from a formula in `epoch` (arithmetic and math functions only, no code)."""
    formula = compile_formula(cfg.formula, ("epoch",), "scheduler.formula")

    def factor(epoch: int) -> float:  # a plain function: LambdaLR then keeps it out of the checkpoint
        value = formula(epoch=epoch)
        if value < 0:
            raise UserError(
                f"scheduler.formula={cfg.formula!r} gives {value:g} at epoch {epoch}: a learning-rate factor "
                f"must be >= 0 (the lr is optimizer.lr times the factor). Fix the formula, e.g. "
                f"max(0, {cfg.formula})")
        return value

    # LambdaLR asks for epoch 0 when built and for epochs 1..epochs after each epoch's validation.
    for epoch in range(min(epochs, MAX_CHECKED_EPOCHS) + 1):
        factor(epoch)
    return _schedule(cfg, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor))


@SCHEDULERS.register("onecycle")
def build_onecycle(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """One-cycle policy (Smith): rises to max_lr, then anneals; stepped every batch."""
    max_lr = cfg.max_lr or 10 * optimizer.param_groups[0]["lr"]
    # The momentum (or Adam's beta1) falls as the lr rises; optimizers with neither (adagrad) keep the lr cycle only.
    has_momentum = any(k in optimizer.defaults for k in ("momentum", "betas"))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch + 1, pct_start=cfg.pct_start,
        anneal_strategy=cfg.anneal_strategy, div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor,
        cycle_momentum=has_momentum,
    )
    return _schedule(cfg, optimizer, scheduler, per_batch=True)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    if has_target(cfg):
        return Schedule(optimizer, instantiate_target(cfg, optimizer))
    builder = SCHEDULERS.get(cfg.name)
    try:
        return builder(cfg, optimizer, epochs, steps_per_epoch)
    except ValueError as e:  # torch refusing a value the schema allows, or a caller that skipped validation
        settings = ", ".join(f"scheduler.{k}={v}" for k, v in cfg.items() if k != "name")
        raise UserError(f"scheduler '{cfg.name}' cannot be built with {settings}: {e}") from None
