"""What a person watching the terminal or `train.log` sees: the run's opening lines, progress (a live bar on a
terminal; a log line every `trainer.log_every_n_steps` batches anywhere else: CI, nohup, a pipe), one line per
epoch, and the summary table at the end."""

from __future__ import annotations

import logging
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trainctl.config.targets import component_name
from trainctl.engine.events import Callback, EpochEnd, StepEnd
from trainctl.engine.step import Trainer
from trainctl.terminal import console

log = logging.getLogger("trainctl")


class ConsoleLogger(Callback):
    """Log lines at the start, after each epoch and at the end; progress as a live bar on terminals and as log
    lines elsewhere (a bar redrawn into a file is unreadable; lines are what CI and `tail -f` want).

    Runs started without Hydra get `<run_dir>/train.log` from here; under Hydra its job logging writes it."""

    def __init__(self, progress: bool = True) -> None:
        live = progress and console.is_terminal
        self.progress_lines = progress and not live
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} img/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not live, transient=True,
        )
        self.task: Any = None
        self.log_file: logging.Handler | None = None
        self.previous_level = logging.NOTSET

    def _open_log_file(self, trainer: Trainer) -> None:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return
        self.log_file = logging.FileHandler(trainer.run_dir / "train.log")
        self.log_file.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
        self.previous_level = log.level
        log.addHandler(self.log_file)
        log.setLevel(logging.INFO)

    def _close(self) -> None:
        self.bar.stop()
        if self.log_file is not None:
            log.removeHandler(self.log_file)
            log.setLevel(self.previous_level)
            self.log_file.close()
            self.log_file = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self._open_log_file(trainer)
        cfg, s, data = trainer.cfg, trainer.state, trainer.data
        if trainer.resumed and s.epoch >= cfg.trainer.epochs:
            log.info("resumed %s: all %d epochs trained, running the final test pass", trainer.run_dir, s.epoch)
        elif trainer.resumed:
            log.info("resumed %s at epoch %d, batch %d (optimizer step %d)", trainer.run_dir, s.epoch + 1,
                     s.batches_in_epoch, s.step)
        params = sum(p.numel() for p in trainer.raw_model.parameters())
        log.info("run %s: model=%s (%s params) dataset=%s (train %d / val %d / test %d) device=%s",
                 trainer.run_dir, component_name(cfg.model), f"{params:,}", component_name(cfg.dataset),
                 len(data.train), len(data.val), len(data.test), trainer.device)
        self.bar.start()

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.task = self.bar.add_task(f"epoch {epoch}/{trainer.cfg.trainer.epochs}", total=trainer.batches,
                                      completed=trainer.state.batches_in_epoch, loss="-", rate="-")

    def on_step_end(self, trainer: Trainer, step: StepEnd) -> None:
        if self.progress_lines:
            log.info("epoch %d/%d  batch %d/%d (%d%%)  loss %.4f  lr %.3g  %s samples/s", step.epoch,
                     trainer.cfg.trainer.epochs, step.batch, step.batches, 100 * step.batch // step.batches,
                     step.loss, step.lr, f"{step.samples_per_s:,.0f}")
        else:
            self.bar.update(self.task, completed=step.batch, loss=f"{step.loss:.4f}",
                            rate=f"{step.samples_per_s:,.0f}")

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        if self.task is not None:  # the bar reaches its end (steps are seen at log points only), then goes
            self.bar.update(self.task, completed=trainer.batches)
            self.bar.refresh()
            self.bar.remove_task(self.task)
            self.task = None
        m = end.metrics
        shown = "  ".join(f"{k} {v:.4f}" for k, v in m.items() if k != "lr")
        log.info("epoch %d/%d  %s | lr %.3g | %s samples/s%s", end.epoch, trainer.cfg.trainer.epochs, shown,
                 m["lr"], f"{end.samples_per_s:,.0f}", "  *best*" if end.is_best else "")

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        self._close()  # the engine logs the test line before the pictures and prints the table after them

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._close()
