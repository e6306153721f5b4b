"""TensorBoard event files in the run directory: the config as text, per-epoch scalars, test scalars."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from trainctl.engine.events import Callback, EpochEnd
from trainctl.engine.step import Trainer


class TensorBoardLogger(Callback):
    def __init__(self) -> None:
        self.writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # On resume, purge_step makes TensorBoard drop what the interrupted run logged from that epoch on,
        # so every step keeps exactly one value.
        resumed_at = trainer.state.epoch + 1 if trainer.resumed else None
        self.writer = SummaryWriter(log_dir=str(trainer.run_dir), purge_step=resumed_at)
        if resumed_at is None:
            text = "```yaml\n" + OmegaConf.to_yaml(trainer.cfg, resolve=True) + "```"
            self.writer.add_text("config", text, 0)

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        for name, value in {**end.metrics, "throughput/train_images_per_s": end.samples_per_s}.items():
            self.writer.add_scalar(name, value, end.epoch)
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        for name, value in result.items():
            if name.startswith("test/") and isinstance(value, float):
                self.writer.add_scalar(name, value, result["best_epoch"])
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._close()  # interrupted or failed: what was logged so far reaches the disk

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
