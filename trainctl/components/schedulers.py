"""Learning-rate schedules: `build_scheduler(cfg, optimizer, epochs, steps_per_epoch) -> Schedule`.

`Schedule` gives the loop one interface for all of them: `step_batch()` after every optimizer step and
`step_epoch(metrics)` after every validation. It steps each torch scheduler at the rate it needs (onecycle and
cyclic per batch, the rest per epoch; a `_target_` scheduler as its config's `interval` and `monitor` say) and
applies the optional linear warm-up on top of any of them by scaling the lr the scheduler chose, then restoring
it, so the scheduler never sees the warm-up.
"""

from __future__ import annotations

import inspect
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
        threshold=cfg.threshold, threshold_mode=cfg.threshold_mode, cooldown=cfg.cooldown, min_lr=cfg.min_lr,
        eps=cfg.eps,
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
    has_momentum = cfg.cycle_momentum and any(k in optimizer.defaults for k in ("momentum", "betas"))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch + 1, pct_start=cfg.pct_start,
        anneal_strategy=cfg.anneal_strategy, div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor,
        cycle_momentum=has_momentum,
    )
    return _schedule(cfg, optimizer, scheduler, per_batch=True)


def _cycle_steps(cfg: DictConfig, key: str, steps_per_epoch: int) -> int:
    """A half-cycle's length in optimizer steps, from `scheduler.<key>` counted in `scheduler.unit`."""
    value = cfg[key]
    steps = value * steps_per_epoch if cfg.unit == "epochs" else value
    if cfg.unit == "steps" and value != int(value):
        raise UserError(f"scheduler.{key}={value:g} is not a whole number of optimizer steps: give an integer, or "
                        f"count in epochs with scheduler.unit=epochs")
    if round(steps) < 1:
        raise UserError(f"scheduler.{key}={value:g} epochs is less than one optimizer step ({steps_per_epoch} per "
                        f"epoch): give a longer half-cycle, or count in steps with scheduler.unit=steps")
    return round(steps)


def _cycles_momentum(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> bool:
    """Whether the cycle moves the momentum: as asked, else when the optimizer already uses momentum or betas
    (turning on momentum the user left at 0 would change the optimizer they chose)."""
    has_betas, has_momentum = "betas" in optimizer.defaults, "momentum" in optimizer.defaults
    cycles = cfg.cycle_momentum
    if cycles is None:
        cycles = has_betas or (has_momentum and optimizer.defaults["momentum"] > 0)
    elif cycles and not (has_betas or has_momentum):
        raise UserError(f"scheduler.cycle_momentum=true needs an optimizer with momentum or betas, and "
                        f"{type(optimizer).__name__} has neither: set scheduler.cycle_momentum=false (or null), or "
                        f"choose optimizer=sgd, rmsprop (with momentum) or adam, adamw, nadam")
    if cycles and cfg.base_momentum > cfg.max_momentum:
        raise UserError(f"scheduler.base_momentum={cfg.base_momentum:g} is above scheduler.max_momentum="
                        f"{cfg.max_momentum:g}: the momentum falls as the lr rises, so give base_momentum <= "
                        "max_momentum (or scheduler.cycle_momentum=false)")
    return bool(cycles)


@SCHEDULERS.register("cyclic")
def build_cyclic(cfg: DictConfig, optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    """Cyclical learning rates (Smith): the lr runs between base_lr and max_lr and back; stepped every batch."""
    # Each parameter group cycles from its own lr, so groups that differ keep their ratio.
    base = [cfg.base_lr or g["lr"] for g in optimizer.param_groups]
    peak = [cfg.max_lr or cfg.max_factor * b for b in base]
    for p, b in zip(peak, base):
        if p <= b:
            raise UserError(f"the cycle's max lr {p:g} (scheduler.max_lr) is not above its base lr {b:g} "
                            "(scheduler.base_lr, default optimizer.lr): give a larger scheduler.max_lr, or leave it "
                            "null for scheduler.max_factor × base_lr")
    up = _cycle_steps(cfg, "step_size_up", steps_per_epoch)
    down = _cycle_steps(cfg, "step_size_down", steps_per_epoch) if cfg.step_size_down is not None else up
    scheduler = torch.optim.lr_scheduler.CyclicLR(
        optimizer, base_lr=base, max_lr=peak, step_size_up=up, step_size_down=down, mode=cfg.mode,
        gamma=cfg.gamma, cycle_momentum=_cycles_momentum(cfg, optimizer), base_momentum=cfg.base_momentum,
        max_momentum=cfg.max_momentum,
    )
    return _schedule(cfg, optimizer, scheduler, per_batch=True)


INTERVALS = ("epoch", "step")
PER_STEP_CLASSES = (torch.optim.lr_scheduler.CyclicLR, torch.optim.lr_scheduler.OneCycleLR)


def _steps_with_a_metric(scheduler: Any) -> bool:
    """Whether `scheduler.step` takes a metric first (ReduceLROnPlateau's `step(metrics)`), not an epoch."""
    try:
        params = list(inspect.signature(scheduler.step).parameters)
    except (TypeError, ValueError):
        return True  # no signature to read: trust the config
    return bool(params) and params[0] != "epoch"


def target_schedule(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> Schedule:
    """A user's scheduler class (`_target_`), stepped as its config declares: `scheduler.interval` (epoch: after
    each validation; step: after each optimizer step; default step for CyclicLR and OneCycleLR subclasses, else
    epoch) and `scheduler.monitor` (the metric passed to `step`, which a ReduceLROnPlateau requires)."""
    interval, monitor, path = cfg.get("interval"), cfg.get("monitor"), cfg._target_
    if interval is not None and interval not in INTERVALS:
        raise UserError(f"scheduler.interval={interval!r} is not allowed: choose epoch (step the scheduler after "
                        "each validation) or step (after each optimizer step)")
    scheduler = instantiate_target(cfg, optimizer)
    interval = interval or ("step" if isinstance(scheduler, PER_STEP_CLASSES) else "epoch")
    # No default monitor for a plateau: its `mode` is the class's own (min unless given), so defaulting to the
    # objective (often val/acc) would decay the lr whenever accuracy improved.
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and monitor is None:
        raise UserError(f"scheduler._target_={path} is a ReduceLROnPlateau, which needs the metric it watches: set "
                        "scheduler.monitor (e.g. scheduler.monitor=val/loss; for an accuracy also "
                        "scheduler.mode=max)")
    if monitor is not None and interval == "step":
        raise UserError(f"scheduler.monitor={monitor} needs scheduler.interval=epoch: metrics exist only after "
                        "validation, once per epoch")
    if monitor is not None and not _steps_with_a_metric(scheduler):
        raise UserError(f"scheduler.monitor={monitor} is for a scheduler whose step() takes a metric (a "
                        f"ReduceLROnPlateau), and {path}.step() takes an epoch: remove scheduler.monitor")
    return Schedule(optimizer, scheduler, per_batch=interval == "step", monitor=monitor)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> Schedule:
    if has_target(cfg):
        return target_schedule(cfg, optimizer)
    builder = SCHEDULERS.get(cfg.name)
    try:
        return builder(cfg, optimizer, epochs, steps_per_epoch)
    except ValueError as e:  # torch refusing a value the schema allows, or a caller that skipped validation
        settings = ", ".join(f"scheduler.{k}={v}" for k, v in cfg.items() if k != "name")
        raise UserError(f"scheduler '{cfg.name}' cannot be built with {settings}: {e}") from None
