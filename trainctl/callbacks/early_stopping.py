"""Stop training when the monitored metric has not improved for `early_stopping.patience` epochs."""

from __future__ import annotations

from omegaconf import DictConfig

from trainctl.engine.events import Callback, EpochEnd, StopTraining
from trainctl.engine.step import Trainer
from trainctl.metrics import improved, metric_mode, monitored


class EarlyStopping(Callback):
    def __init__(self, cfg: DictConfig) -> None:
        spec = cfg.early_stopping
        self.patience, self.min_delta = spec.patience, spec.min_delta
        self.monitor = monitored(spec.monitor, cfg.objective)
        self.mode = metric_mode(self.monitor, spec.mode)
        self.best: float | None = None
        self.best_epoch = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        # A resumed run replays the history it already has, so patience counts from the true best epoch.
        for row in trainer.state.history:
            self._see(row["epoch"], row[self.monitor])

    def _see(self, epoch: int, value: float) -> None:
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch = value, epoch

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        self._see(end.epoch, end.metrics[self.monitor])
        if end.epoch - self.best_epoch >= self.patience:
            raise StopTraining(f"early stopping: {self.monitor} has not improved for {self.patience} epochs",
                               status="early_stopped")
