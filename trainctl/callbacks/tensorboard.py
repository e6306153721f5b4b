"""TensorBoard event files in the run directory: the config as text, per-epoch scalars with train and validation
overlaid (a custom-scalars layout), per-step loss and learning rate, test scalars, and an HParams session
(hparams.py).

Two event files, because TensorBoard's purge on resume drops every tag of a file from one step number on: the
run directory's own file counts epochs, `<run>/steps/` counts optimizer steps, and each is purged at its own
counter when a run resumes, so every point keeps exactly one value. A sweep trial keeps only the first: its
trials are compared by their epoch curves and HParams rows, and a second run per trial would double the run
list (sweep trials are never resumed).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from omegaconf import OmegaConf

from trainctl.callbacks.hparams import FAILED, hparams_of, run_status, write_session
from trainctl.engine.events import Callback, EpochEnd, StepEnd
from trainctl.engine.signals import Interrupted
from trainctl.engine.step import Trainer

log = logging.getLogger("trainctl")

STEPS_DIR = "steps"  # TensorBoard shows it as the run `<run>/steps`


class TensorBoardLogger(Callback):
    def __init__(self) -> None:
        self.writer: Any = None  # epochs; other callbacks write their pictures here too
        self.step_writer: Any = None
        self.layout_written = False
        self.started = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from trainctl.sweep.trial_link import in_sweep

        resumed = trainer.resumed
        self.started = time.time()
        self.writer = SummaryWriter(log_dir=str(trainer.run_dir),
                                    purge_step=trainer.state.epoch + 1 if resumed else None)
        if not in_sweep():
            self.step_writer = SummaryWriter(log_dir=str(trainer.run_dir / STEPS_DIR),
                                             purge_step=trainer.state.step + 1 if resumed else None)
        if not resumed:
            text = "```yaml\n" + OmegaConf.to_yaml(trainer.cfg, resolve=True) + "```"
            self.writer.add_text("config", text, 0)

    def on_step_end(self, trainer: Trainer, step: StepEnd) -> None:
        if self.step_writer is None:  # a sweep trial
            return
        # Values the engine has read at this log point anyway: no extra host sync.
        self.step_writer.add_scalar("step/train_loss", step.loss, step.step)
        self.step_writer.add_scalar("step/lr", step.lr, step.step)
        self.step_writer.add_scalar("step/train_samples_per_s", step.samples_per_s, step.step)
        if step.acc is not None:
            self.step_writer.add_scalar("step/train_acc", step.acc, step.step)

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        if not self.layout_written:
            self.writer.add_custom_scalars(train_val_layout(end.metrics, per_step=self.step_writer is not None))
            self.layout_written = True
        for name, value in {**end.metrics, "throughput/train_images_per_s": end.samples_per_s}.items():
            self.writer.add_scalar(name, value, end.epoch)
        for writer in (self.writer, self.step_writer):
            if writer is not None:
                writer.flush()

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        for name, value in result.items():
            if name.startswith("test/") and isinstance(value, float):
                self.writer.add_scalar(name, value, result["best_epoch"])
        write_session(self.writer.file_writer, hparams_of(trainer.cfg), run_status(result), result["epochs"],
                      self.started)
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        # A failed run is a Failure row; an interrupted one has no row yet, as it may be resumed and a session
        # is written once.
        if self.writer is not None and isinstance(error, Exception) and not isinstance(error, Interrupted):
            write_session(self.writer.file_writer, hparams_of(trainer.cfg), FAILED, trainer.state.epoch,
                          self.started)
        self._close()  # interrupted or failed: what was logged so far reaches the disk

    def _close(self) -> None:
        for writer in (self.writer, self.step_writer):
            if writer is not None:
                writer.flush()
                writer.close()
        self.writer = self.step_writer = None


def train_val_layout(metrics: dict[str, float], per_step: bool = True) -> dict[str, Any]:
    """TensorBoard's custom-scalars layout: one chart per metric with its train and val curves overlaid, and
    the per-step loss beside them when the run logs it (tab CUSTOM SCALARS)."""
    names = sorted({k.split("/", 1)[1] for k in metrics if k.startswith("train/")}
                   & {k.split("/", 1)[1] for k in metrics if k.startswith("val/")})
    charts = {name: ["Multiline", [f"^train/{name}$", f"^val/{name}$"]] for name in names}
    if not per_step:
        return {"train vs val": charts}
    return {"train vs val": charts,
            "per step": {"training loss": ["Multiline", ["^step/train_loss$"]],
                         "learning rate": ["Multiline", ["^step/lr$"]]}}
