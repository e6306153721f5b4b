"""Weight and gradient distributions and the gradient norm in TensorBoard (`tensorboard.histograms=true`).

Tags: `weights/<name>` and `gradients/<name>` once per epoch (HISTOGRAMS and DISTRIBUTIONS tabs), the global
gradient norm `train/grad_norm` per epoch (the mean over the epoch's optimizer steps) and `train/grad_norm_step`
at each log point (the mean since the previous one, by optimizer step).

The gradients are those the optimizer applies, caught by an optimizer step pre-hook, because the trainer frees
them (`zero_grad(set_to_none=True)`) right after the step. So they are: the mean over `trainer.grad_accum_steps`
batches; clipped when `trainer.gradient_clip_val` is set (under norm clipping the norm never exceeds it); with
fp16, unscaled (by the grad scaler, or here when a fused optimizer is handed scaled gradients), and the steps the
scaler skips for inf/NaN gradients are not counted. The gradient histograms are of the epoch's last step.

Per step the hook only queues work on the device: the norm (torch's foreach norm) added to two accumulators,
no host sync; at the epoch's last step it also keeps a copy of the gradients. The host reads the accumulators at
log points, where the engine syncs anyway, and at epoch end, where the histograms are made.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import torch
from torch.utils.hooks import RemovableHandle

from trainctl.callbacks.tensorboard import TensorBoardLogger
from trainctl.data.splits import ceil_div
from trainctl.engine.events import Callback, EpochEnd, StepEnd
from trainctl.engine.step import Trainer

log = logging.getLogger("trainctl")

NORM_TAG = "train/grad_norm"
STEP_NORM_TAG = "train/grad_norm_step"


def _logger(trainer: Trainer) -> TensorBoardLogger | None:
    return next((c for c in trainer.events.callbacks if isinstance(c, TensorBoardLogger)), None)


def finite_values(tensor: torch.Tensor) -> np.ndarray:
    """A tensor's finite values as a flat float32 array (a histogram of inf or NaN cannot be drawn)."""
    values = tensor.detach().float().cpu().numpy().ravel()
    return values[np.isfinite(values)]


class Distributions(Callback):
    """Histograms of every parameter and of its gradient each epoch, and the gradient norm (see the module)."""

    def __init__(self) -> None:
        self.handle: RemovableHandle | None = None
        self.since_log: torch.Tensor | None = None  # [sum of norms, steps] since the previous log point
        self.in_epoch: torch.Tensor | None = None  # the same over the epoch
        self.names: dict[int, str] = {}  # id(parameter) → its name in the model
        self.last_step = 0  # `state.step` once the epoch's last optimizer step is done
        self.grads: dict[str, torch.Tensor] = {}  # the epoch's last step's gradients

    def on_fit_start(self, trainer: Trainer) -> None:
        self.names = {id(p): name for name, p in trainer.raw_model.named_parameters()}
        self.since_log = torch.zeros(2, device=trainer.device)
        self.in_epoch = torch.zeros(2, device=trainer.device)
        self.handle = trainer.optimizer.register_step_pre_hook(functools.partial(self._before_step, trainer))

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        s, accum = trainer.state, trainer.cfg.trainer.grad_accum_steps
        # As the loop counts: a resumed epoch has done batches_in_epoch // accum of its steps already.
        self.last_step = s.step - s.batches_in_epoch // accum + ceil_div(trainer.batches, accum)
        self.grads = {}

    def _before_step(self, trainer: Trainer, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        assert self.since_log is not None and self.in_epoch is not None
        # GradScaler hands a fused optimizer its gradients still scaled, with these two attributes to undo it.
        scale: torch.Tensor | None = getattr(optimizer, "grad_scale", None)
        found_inf: torch.Tensor | None = getattr(optimizer, "found_inf", None)
        with torch.no_grad():
            norm = torch.nn.utils.get_total_norm([p.grad for p in params]).float().to(self.since_log.device)
            if scale is not None:
                norm = norm / scale.to(norm.device)
            if found_inf is None:
                counted = torch.stack((norm, torch.ones_like(norm)))
            else:  # the optimizer skips this step: it is not counted
                taken = found_inf.to(norm.device) == 0
                counted = torch.stack((torch.where(taken, norm, 0.0), taken.float()))
            self.since_log += counted
            self.in_epoch += counted
            if trainer.state.step + 1 == self.last_step:
                self.grads = {self.names[id(p)]: p.grad.detach().float() / scale if scale is not None
                              else p.grad.detach().clone() for p in params if id(p) in self.names}

    def on_step_end(self, trainer: Trainer, step: StepEnd) -> None:
        logger = _logger(trainer)
        if self.since_log is None or logger is None or logger.writer is None:
            return
        total, steps = self.since_log.tolist()
        self.since_log.zero_()
        if steps:
            logger.writer.add_scalar(STEP_NORM_TAG, total / steps, step.step)

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        logger = _logger(trainer)
        if self.in_epoch is None or logger is None or logger.writer is None:
            return
        writer = logger.writer
        total, steps = self.in_epoch.tolist()
        self.in_epoch.zero_()
        if steps:
            writer.add_scalar(NORM_TAG, total / steps, end.epoch)
        for name, param in trainer.raw_model.named_parameters():
            self._histogram(writer, f"weights/{name}", param, end.epoch)
        for name, grad in self.grads.items():
            self._histogram(writer, f"gradients/{name}", grad, end.epoch)
        if not self.grads:  # the last step was skipped (fp16 inf) or the model has no gradients
            log.debug("tensorboard.histograms: no gradients at the last step of epoch %d", end.epoch)
        self.grads = {}
        writer.flush()  # the TensorBoard logger flushed before these were written

    @staticmethod
    def _histogram(writer: Any, tag: str, tensor: torch.Tensor, epoch: int) -> None:
        values = finite_values(tensor)
        if values.size:
            writer.add_histogram(tag, values, epoch)

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        self._remove()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._remove()

    def _remove(self) -> None:
        if self.handle is not None:
            self.handle.remove()
        self.handle, self.since_log, self.in_epoch, self.grads = None, None, None, {}
