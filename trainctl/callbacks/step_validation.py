"""`trainer.val_every_n_steps=N`: validation every N optimizer steps, as the tutorial logs test accuracy every
50 steps, so even a one-epoch run draws a curve.

A watcher, not part of training: it evaluates the model that epoch-end validation evaluates (the EMA copy when
there is one) on the validation split (its first `trainer.max_eval_batches` batches when set), logs `val/*` at
the optimizer step as `val/*_step` in the run's own event file (beside `train/loss_step` and `train/acc_step`)
and in the log, and puts the
model back in training mode. Nothing reads these values: checkpoints, schedules, early stopping and the
objective still use epoch-end validation only. It draws no random numbers, so the run trains exactly as it
would without it. The one host sync is at those steps. In a data-parallel run the first process evaluates the
whole split alone (its callbacks are the only ones).
"""

from __future__ import annotations

import logging
from typing import Any

from trainctl.callbacks.tensorboard import TensorBoardLogger
from trainctl.engine.events import Callback
from trainctl.engine.step import Trainer, evaluate

log = logging.getLogger("trainctl")


class StepValidation(Callback):
    def __init__(self, every: int) -> None:
        self.every = every
        self.writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        logger = next((c for c in trainer.events.callbacks if isinstance(c, TensorBoardLogger)), None)
        self.writer = logger.writer if logger is not None else None

    def on_train_step(self, trainer: Trainer) -> None:
        step = trainer.state.step
        if step % self.every:
            return
        cfg = trainer.cfg.trainer
        training = trainer.raw_model.training
        metrics = evaluate(trainer.eval_model, trainer.data.val, trainer.data, trainer.loss_fn, cfg.eval_batch_size,
                           trainer.settings, max_batches=cfg.max_eval_batches)
        trainer.raw_model.train(training)  # evaluate switched it (or a wrapper of it) to eval mode
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"val/{name}_step", value, step)
        log.info("step %d: %s", step, "  ".join(f"val/{k} {v:.4f}" for k, v in metrics.items()))
