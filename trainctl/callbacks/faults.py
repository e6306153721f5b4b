"""Test-only fault injection, switched on by the environment variable TRAINCTL_FAULTS (off: not even added).

    TRAINCTL_FAULTS="kill_at_step=37"       SIGKILL this process right after optimizer step 37
    TRAINCTL_FAULTS="signal_at_step=12:INT" send SIGINT (or TERM) to this process after step 12
    TRAINCTL_FAULTS="kill_in_save=3"        SIGKILL during the 3rd checkpoint save, before its rename
    TRAINCTL_FAULTS="kill_after_save=2"     SIGKILL right after the 2nd checkpoint save
    TRAINCTL_FAULTS="nan_at_batch=5"        make the loss of training batch 5 (counted over the run) NaN
    TRAINCTL_FAULTS="raise_at_fit_end=1"    a callback that raises at fit end (after metrics.json is written)
    TRAINCTL_FAULTS="...,fault_rank=1"      only in the process of rank 1 of a data-parallel run (default: all)

Several faults combine with commas. The tests of exact resume and graceful stops drive the real CLI with it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from torch import nn

from trainctl.data.splits import ceil_div
from trainctl.engine.events import Callback
from trainctl.engine.step import Trainer

ENV = "TRAINCTL_FAULTS"


def requested_faults() -> dict[str, str]:
    return dict(item.split("=", 1) for item in os.environ.get(ENV, "").split(",") if "=" in item)


def _kill(signum: int = signal.SIGKILL) -> None:
    os.kill(os.getpid(), signum)


class NaNAtBatch(nn.Module):
    """Wraps the loss: training batch `at` of the run (counted from 0 over all epochs) gets a NaN loss.

    The count lives on the device and the loss is multiplied by 1 or NaN there, so that a step captured as a
    CUDA graph (where this Python runs once) keeps counting; times 1 leaves every other loss as it was."""

    def __init__(self, loss_fn: nn.Module, at: int, first: int) -> None:
        super().__init__()
        self.loss_fn, self.at, self.first = loss_fn, at, first
        self.count: torch.Tensor | None = None

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(output, target)
        if torch.is_grad_enabled():  # training batches only; evaluation runs under inference mode
            if self.count is None:
                self.count = torch.full((), self.first, dtype=torch.long, device=loss.device)
            loss = loss * torch.where(self.count == self.at, float("nan"), 1.0)
            self.count += 1
        return loss


class StepFaults(Callback):
    """Kills or signals this process after a given optimizer step."""

    all_ranks = True  # a data-parallel run's faults are chosen by `fault_rank`

    def __init__(self, faults: dict[str, str]) -> None:
        self.kill_at = faults.get("kill_at_step")
        at, _, name = faults.get("signal_at_step", "").partition(":")
        self.signal_at, self.signal = at, getattr(signal, f"SIG{name or 'INT'}")

    def on_train_step(self, trainer: Trainer) -> None:
        step = str(trainer.state.step)
        if step == self.kill_at:
            _kill()
        if step == self.signal_at:
            _kill(self.signal)


class SaveFaults(Callback):
    """Kills this process inside or right after the n-th checkpoint save, and poisons a chosen batch's loss."""

    all_ranks = True

    def __init__(self, faults: dict[str, str]) -> None:
        self.faults = faults
        self.saves_started = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        trainer.checkpoints.before_replace = self._in_save
        if "nan_at_batch" in self.faults:
            per_epoch = ceil_div(len(trainer.data.train), trainer.cfg.trainer.batch_size)  # as the loop counts
            first = trainer.state.epoch * per_epoch + trainer.state.batches_in_epoch
            trainer.loss_fn = NaNAtBatch(trainer.loss_fn, int(self.faults["nan_at_batch"]), first)

    def _in_save(self) -> None:
        self.saves_started += 1
        if self.faults.get("kill_in_save") == str(self.saves_started):
            _kill()

    def on_checkpoint_saved(self, trainer: Trainer, path: Path) -> None:
        if self.faults.get("kill_after_save") == str(self.saves_started):
            _kill()


class FailAtFitEnd(Callback):
    """Raises at fit end, as a picture or summary that breaks on an unusual model would."""

    def on_fit_end(self, trainer: Trainer, result: dict) -> None:
        raise RuntimeError("injected failure at fit end")


def fault_callbacks() -> list[Callback]:
    faults, rank = requested_faults(), os.environ.get("RANK", "0")
    if not faults or faults.get("fault_rank", rank) != rank:
        return []
    step_faults = {"kill_at_step", "signal_at_step"} & set(faults)
    return [SaveFaults(faults), *([StepFaults(faults)] if step_faults else []),
            *([FailAtFitEnd()] if "raise_at_fit_end" in faults else [])]
