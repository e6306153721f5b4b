"""When checkpoints are written: `last.pt` after every epoch, `best.pt` when the monitored metric improved,
`last.pt` mid-epoch every `checkpoint.every_n_steps` optimizer steps, and `last.pt` when a signal stops the run.
What goes into a checkpoint is `trainctl.engine.checkpoint.capture`."""

from __future__ import annotations

from omegaconf import DictConfig

from trainctl.engine.capture import capture
from trainctl.engine.events import Callback, EpochEnd
from trainctl.engine.signals import Interrupted
from trainctl.engine.step import Trainer
from trainctl.metrics import improved, metric_mode, monitored


def _save(trainer: Trainer, *names: str) -> None:
    # Every process of a data-parallel run gets here at once (its RNG state is gathered); rank 0 writes.
    state = capture(trainer)
    for name in names:
        path = trainer.checkpoints.save(name, state) if trainer.dist.is_main else trainer.checkpoints.path(name)
        trainer.events.emit("on_checkpoint_saved", trainer, path)


class ModelCheckpoint(Callback):
    all_ranks = True  # saving is a collective operation in a data-parallel run

    def __init__(self, cfg: DictConfig) -> None:
        self.monitor = monitored(cfg.checkpoint.monitor, cfg.objective)
        self.mode = metric_mode(self.monitor, cfg.checkpoint.mode)

    def on_validation_end(self, trainer: Trainer, end: EpochEnd) -> None:
        s = trainer.state
        end.is_best = improved(end.metrics[self.monitor], s.best_value, self.mode) or self._breaks_tie(trainer, end)
        if end.is_best:
            s.best_value, s.best_epoch = end.metrics[self.monitor], end.epoch
        _save(trainer, "last", *(("best",) if end.is_best else ()))

    def _breaks_tie(self, trainer: Trainer, end: EpochEnd) -> bool:
        """A tie on the monitored metric (accuracy on a small validation set often repeats) goes to the epoch
        with the lower val/loss, the secondary metric: otherwise best.pt would keep the worse model."""
        s, tie_breaker = trainer.state, "val/loss"
        if self.monitor == tie_breaker or end.metrics[self.monitor] != s.best_value or not s.best_epoch:
            return False
        new, old = end.metrics.get(tie_breaker), s.history[s.best_epoch - 1].get(tie_breaker)
        return new is not None and old is not None and new < old

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        # A signal stopped the run: the engine recorded its position (a mid-epoch step or an epoch's end that
        # was already saved); save unless last.pt already holds exactly this state.
        if isinstance(error, Interrupted) and trainer.state.step != getattr(self, "saved_step", None):
            _save(trainer, "last")

    def on_checkpoint_saved(self, trainer: Trainer, path) -> None:
        self.saved_step = trainer.state.step


class MidEpochCheckpoint(Callback):
    """`last.pt` every n optimizer steps inside an epoch, with the position and running sums (exact resume)."""

    all_ranks = True

    def __init__(self, every_n_steps: int) -> None:
        self.every = every_n_steps

    def on_train_step(self, trainer: Trainer) -> None:
        if trainer.state.step % self.every == 0:
            trainer.sync_progress()
            _save(trainer, "last")
