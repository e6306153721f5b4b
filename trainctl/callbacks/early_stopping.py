"""Stop training when the monitored metric has not improved for `early_stopping.patience` epochs, or once it
reaches `early_stopping.stop_at` (a tutorial's `if accuracy > 0.98: break`)."""

from __future__ import annotations

from omegaconf import DictConfig

from trainctl.engine.events import Callback, EpochEnd, StopTraining
from trainctl.engine.step import Trainer
from trainctl.metrics import improved, metric_mode, monitored


class EarlyStopping(Callback):
    def __init__(self, cfg: DictConfig) -> None:
        spec = cfg.early_stopping
        self.patience, self.min_delta = spec.patience, spec.min_delta
        self.stop_at: float | None = spec.get("stop_at")
        self.monitor = monitored(spec.monitor, cfg.objective)
        self.mode = metric_mode(self.monitor, spec.mode)
        self.best: float | None = None
        self.best_epoch = 0

    @staticmethod
    def wanted(cfg: DictConfig) -> bool:
        spec = cfg.early_stopping
        return spec.patience is not None or spec.get("stop_at") is not None

    def on_fit_start(self, trainer: Trainer) -> None:
        # A resumed run replays the history it already has, so patience counts from the true best epoch.
        for row in trainer.state.history:
            self._see(row["epoch"], row[self.monitor])

    def _see(self, epoch: int, value: float) -> None:
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch = value, epoch

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        value = end.metrics[self.monitor]
        self._see(end.epoch, value)
        if self.stop_at is not None and (value >= self.stop_at if self.mode == "max" else value <= self.stop_at):
            raise StopTraining(f"early stopping: {self.monitor} reached {value:.4g} (early_stopping.stop_at="
                               f"{self.stop_at:g})", status="early_stopped")
        if self.patience is not None and end.epoch - self.best_epoch >= self.patience:
            raise StopTraining(f"early stopping: {self.monitor} has not improved for {self.patience} epochs",
                               status="early_stopped")
