"""Sweep pruning: report the objective to this job's Optuna trial after each epoch and stop when the
sweep's pruner says so (single-objective studies only: Optuna prunes nothing else)."""

from __future__ import annotations

import math
from typing import Any

from trainctl.engine.events import Callback, EpochEnd, StopTraining
from trainctl.engine.step import Trainer


class OptunaPruning(Callback):
    def __init__(self, trial: Any, objective: str) -> None:
        self.trial, self.objective = trial, objective

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        value = end.metrics[self.objective]
        if math.isfinite(value):
            self.trial.report(value, end.epoch)
        if self.trial.should_prune():
            raise StopTraining(f"pruned by the sweep's pruner after epoch {end.epoch}", status="pruned")


def pruning_callback(objective: Any) -> OptunaPruning | None:
    """The pruning callback when this process runs a trial of a single-objective sweep, else None."""
    from trainctl.sweep.trial_link import current_trial

    trial = current_trial()
    if trial is None or not isinstance(objective, str) or len(trial.study.directions) > 1:
        return None
    return OptunaPruning(trial, objective)
