"""Named training events and the callbacks that react to them.

The engine announces what happens; everything that watches training rather than doing it (logging,
checkpoint policy, early stopping, pruning, pictures, fault injection in tests) is a `Callback` with a method
per event. Events, in the order a run announces them:

    fit_start → (epoch_start → step_end* → validation_end → epoch_end)* → fit_end
    checkpoint_saved whenever a checkpoint file is written; exception when the run fails or is interrupted

`step_end` comes at log points only (every `trainer.log_every_n_steps` batches), where the engine reads its
device counters anyway. `train_step` comes after every optimizer step and is only dispatched to callbacks that
override it, so the hot loop pays nothing for callbacks that do not listen to steps.

What each event passes is the run's `trainctl.engine.step.Trainer`, typed `AnyTrainer` (an alias of `Any`) here:
the trainer holds its `Events`, so naming its class here would make the two modules import each other.
Callbacks annotate it with the real class.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from trainctl.errors import what_raised

log = logging.getLogger("trainctl")
T = TypeVar("T")

AnyTrainer = Any  # trainctl.engine.step.Trainer (see the module docstring)

EVENTS = ("on_fit_start", "on_epoch_start", "on_step_end", "on_train_step", "on_validation_end", "on_epoch_end",
          "on_checkpoint_saved", "on_fit_end", "on_exception")


# Events after the result is in hand (metrics.json is written before `fit_end`): what a callback does then
# (pictures, summaries, figures, a user's report) may fail, but never costs the run its result or exit code.
AFTER_TRAINING = ("on_fit_end",)


def after_training(what: str, work: Callable[[], T]) -> T | None:
    """Run an analysis of a finished run (the verdict, a callback at fit end): a failure is logged with its name,
    one line on the console and the traceback in train.log, and the run goes on; None when it failed."""
    try:
        return work()
    except Exception as e:  # noqa: BLE001  (any failure of an analysis: the run's result stands)
        log.warning("%s failed (%s); the run's metrics are saved, this is left out (traceback in train.log)",
                    what, what_raised(e))
        logging.getLogger("trainctl.file").error("%s failed", what, exc_info=True)
        return None


class StopTraining(Exception):
    """Raised by a callback to end training after this epoch (early stopping, a pruned sweep trial)."""

    def __init__(self, reason: str, status: str = "stopped") -> None:
        super().__init__(reason)
        self.status = status  # written to metrics.json: "pruned", "early_stopped", ...


@dataclass
class StepEnd:
    """A log point inside an epoch."""

    epoch: int  # the epoch in progress, from 1
    batch: int  # batches trained in this epoch so far
    batches: int  # batches this epoch will train
    step: int  # optimizer steps over the whole run
    loss: float  # mean training loss since the previous log point
    lr: float
    samples_per_s: float  # since the start of the epoch
    acc: float | None = None  # classifiers: training accuracy since the previous log point


@dataclass
class EpochEnd:
    """An epoch after its validation pass."""

    epoch: int  # epochs completed, from 1
    metrics: dict[str, float]  # train/*, val/* and lr
    samples_per_s: float
    is_best: bool = False  # set by the checkpoint policy when the monitored metric improved
    notes: list[str] = field(default_factory=list)  # short remarks for the epoch's log line


class Callback:
    """Base class: override the events you need; each gets the run's `Trainer` (model, optimizer, state, config).

    In a data-parallel run callbacks run in the process of rank 0 only, unless they set `all_ranks = True`
    (those that take part in collective operations, as checkpointing does)."""

    all_ranks = False

    def on_fit_start(self, trainer: AnyTrainer) -> None: ...

    def on_epoch_start(self, trainer: AnyTrainer, epoch: int) -> None: ...

    def on_step_end(self, trainer: AnyTrainer, step: StepEnd) -> None: ...

    def on_train_step(self, trainer: AnyTrainer) -> None:
        """After every optimizer step. Costly: only overriding callbacks are called, from the hot loop."""

    def on_validation_end(self, trainer: AnyTrainer, end: EpochEnd) -> None: ...

    def on_epoch_end(self, trainer: AnyTrainer, end: EpochEnd) -> None: ...

    def on_checkpoint_saved(self, trainer: AnyTrainer, path: Path) -> None: ...

    def on_fit_end(self, trainer: AnyTrainer, result: dict[str, Any]) -> None: ...

    def on_exception(self, trainer: AnyTrainer, error: BaseException) -> None: ...


def _overrides(callback: Callback, event: str) -> bool:
    return getattr(type(callback), event, None) is not getattr(Callback, event)


class Events:
    """Announces events to callbacks in order.

    An event announced by a callback while another event is being announced (the checkpoint callback saves
    during `validation_end`) waits until every callback has seen the first, so each callback sees events in
    the documented order. A `StopTraining` raised by one callback is held until every callback has seen the
    event, so none misses the last epoch."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)
        self.step_listeners = [cb for cb in self.callbacks if _overrides(cb, "on_train_step")]
        self._pending: list[tuple[str, AnyTrainer, tuple[Any, ...]]] | None = None  # set while announcing

    def emit(self, event: str, trainer: AnyTrainer, *args: Any) -> None:
        if self._pending is not None:
            self._pending.append((event, trainer, args))
            return
        self._pending = [(event, trainer, args)]
        stop: StopTraining | None = None
        try:
            while self._pending:
                name, t, event_args = self._pending.pop(0)
                for callback in self.callbacks:
                    try:
                        self._call(callback, name, t, event_args)
                    except StopTraining as e:
                        stop = stop or e
        finally:
            self._pending = None
        if stop is not None:
            raise stop

    @staticmethod
    def _call(callback: Callback, name: str, trainer: AnyTrainer, args: tuple[Any, ...]) -> None:
        if name not in AFTER_TRAINING:
            getattr(callback, name)(trainer, *args)
            return
        after_training(f"callback {type(callback).__name__}.{name}", lambda: getattr(callback, name)(trainer, *args))

    def train_step(self, trainer: AnyTrainer) -> None:
        for callback in self.step_listeners:
            callback.on_train_step(trainer)

    def exception(self, trainer: AnyTrainer, error: BaseException) -> None:
        """Every callback hears of the failure; one that fails in turn is logged, never hides the first error."""
        for callback in self.callbacks:
            try:
                callback.on_exception(trainer, error)
            except Exception:
                log.exception("callback %s failed while handling %s", type(callback).__name__, type(error).__name__)
