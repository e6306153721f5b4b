"""Everything that watches training rather than doing it, as callbacks on the engine's events.

`default_callbacks(cfg)` are trainctl's own, switched by their config sections; `user_callbacks(cfg)` are the
user's: from the `callbacks` config key (name → `{_target_: ...}`) and from installed packages (the
`trainctl.callbacks` entry-point group).
"""

from __future__ import annotations

from omegaconf import DictConfig

from trainctl.callbacks.checkpointing import MidEpochCheckpoint, ModelCheckpoint
from trainctl.callbacks.console import ConsoleLogger
from trainctl.callbacks.distributions import Distributions
from trainctl.callbacks.early_stopping import EarlyStopping
from trainctl.callbacks.faults import fault_callbacks
from trainctl.callbacks.graph import ModelGraph
from trainctl.callbacks.live_figures import LiveFigures
from trainctl.callbacks.loading import user_callbacks
from trainctl.callbacks.pictures import PredictionPictures, wanted
from trainctl.callbacks.profiler import StepProfiler
from trainctl.callbacks.pruning import pruning_callback
from trainctl.callbacks.step_validation import StepValidation
from trainctl.callbacks.summary import ModelSummary
from trainctl.callbacks.tensorboard import TensorBoardLogger
from trainctl.engine.events import Callback

__all__ = ["Callback", "default_callbacks", "user_callbacks", "all_callbacks"]


def default_callbacks(cfg: DictConfig) -> list[Callback]:
    """trainctl's callbacks for a run, in the order they hear each event (checkpoint policy first, so the
    log line knows whether the epoch was the best)."""
    callbacks: list[Callback | None] = [
        ModelCheckpoint(cfg),
        MidEpochCheckpoint(cfg.checkpoint.every_n_steps) if cfg.checkpoint.every_n_steps else None,
        # before TensorBoard, whose writer it uses and which closes it at fit end
        PredictionPictures(cfg.tensorboard) if wanted(cfg.tensorboard) else None,
        LiveFigures(cfg.tensorboard.get("figures_every_n_epochs"), bool(cfg.tensorboard.figures))
        if cfg.tensorboard.figures or cfg.tensorboard.get("figures_every_n_epochs") else None,
        TensorBoardLogger(),
        ConsoleLogger(cfg.trainer.progress),
        ModelSummary(),  # after the console (its line goes to train.log) and TensorBoard (whose writer it uses)
        # after TensorBoard, whose writers they use (none writes at fit end, when it closes them); opt-in: costly
        Distributions() if cfg.tensorboard.histograms else None,
        ModelGraph() if cfg.tensorboard.graph else None,
        StepProfiler(cfg.trainer.profile_steps) if cfg.trainer.profile else None,
        # after TensorBoard, whose step writer it uses
        StepValidation(cfg.trainer.val_every_n_steps) if cfg.trainer.get("val_every_n_steps") else None,
        EarlyStopping(cfg) if EarlyStopping.wanted(cfg) else None,
        pruning_callback(cfg.objective),
        *fault_callbacks(),
    ]
    return [c for c in callbacks if c is not None]


def all_callbacks(cfg: DictConfig) -> list[Callback]:
    return [*default_callbacks(cfg), *user_callbacks(cfg)]
