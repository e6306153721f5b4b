"""TensorBoard events in the run directory, one TensorBoard run per training run: the config as text, per-epoch
scalars with train and validation overlaid (a custom-scalars layout), per-step loss, learning rate and throughput
(`*_step` tags, as Lightning names them), test scalars, the headline results HParams shows first, and an HParams
session (hparams.py).

One event file holds two counters: epoch scalars are stepped by epoch, per-step ones by optimizer step. When a
run resumes, TensorBoard drops every value of the file from the purge step on; purging at the checkpoint's
optimizer step drops exactly the per-step points logged after it, while every epoch point (an epoch number is
never above the optimizer steps it took, and an epoch is logged after its checkpoint) stays: every point keeps
exactly one value.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from trainctl.callbacks.hparams import FAILED, headline_results, hparams_of, run_status, write_session
from trainctl.engine.events import Callback, EpochEnd, StepEnd
from trainctl.engine.signals import Interrupted
from trainctl.engine.step import Trainer

log = logging.getLogger("trainctl")

EPOCH_TAGS = {"lr": "train/lr"}  # metrics.json's names → tags (a bare `lr` read as optimizer.lr in HParams)


class TensorBoardLogger(Callback):
    def __init__(self) -> None:
        self.writer: Any = None  # other callbacks write their pictures here too
        self.layout_written = False
        self.started = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        resumed = trainer.resumed
        if resumed:
            after_existing_files(trainer.run_dir)
        self.started = time.time()
        self.writer = SummaryWriter(log_dir=str(trainer.run_dir),
                                    purge_step=trainer.state.step + 1 if resumed else None)
        if not resumed:
            text = "```yaml\n" + OmegaConf.to_yaml(trainer.cfg, resolve=True) + "```"
            self.writer.add_text("config", text, 0)

    def on_step_end(self, trainer: Trainer, step: StepEnd) -> None:
        # Values the engine has read at this log point anyway: no extra host sync.
        self.writer.add_scalar("train/loss_step", step.loss, step.step)
        self.writer.add_scalar("train/lr_step", step.lr, step.step)
        self.writer.add_scalar("throughput/train_samples_per_s_step", step.samples_per_s, step.step)
        if step.acc is not None:
            self.writer.add_scalar("train/acc_step", step.acc, step.step)

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        if not self.layout_written:
            self.writer.add_custom_scalars(train_val_layout(end.metrics))
            self.layout_written = True
        for name, value in {**end.metrics, "throughput/train_images_per_s": end.samples_per_s}.items():
            self.writer.add_scalar(EPOCH_TAGS.get(name, name), value, end.epoch)
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        for name, value in result.items():
            if name.startswith("test/") and isinstance(value, float):
                self.writer.add_scalar(name, value, result["best_epoch"])
        for name, value in headline_results(result).items():
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
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        self.writer = None


def train_val_layout(metrics: dict[str, float]) -> dict[str, Any]:
    """TensorBoard's custom-scalars layout: one chart per metric with its train and val curves overlaid, and
    the per-step loss and learning rate beside them (tab CUSTOM SCALARS)."""
    names = sorted({k.split("/", 1)[1] for k in metrics if k.startswith("train/")}
                   & {k.split("/", 1)[1] for k in metrics if k.startswith("val/")})
    charts = {name: ["Multiline", [f"^train/{name}$", f"^val/{name}$"]] for name in names}
    return {"train vs val": charts,
            "per step": {"training loss": ["Multiline", ["^train/loss_step$"]],
                         "learning rate": ["Multiline", ["^train/lr_step$"]]}}


def after_existing_files(run_dir: Path) -> None:
    """Wait, at most a second, until this process's event file will sort after the run's earlier ones: TensorBoard
    reads a run's files in name order, whose first field is the writer's start second, and the purge on resume
    only drops the old points when the new file comes last (a resume within the second of its run's start would
    otherwise put its epochs before the earlier ones)."""
    stamps = [int(name.split(".")[3]) for name in (p.name for p in run_dir.glob("events.out.tfevents.*"))
              if name.split(".")[3].isdigit()]
    if stamps and max(stamps) >= int(time.time()):
        time.sleep(max(stamps) + 1 - time.time())
