"""What TensorBoard shows of the model's predictions, switched by `tensorboard.*`:

- `images`: once, the first `num_images` training samples with their labels (`visuals/train_samples`, at step 0);
  each epoch, the first `num_images` validation samples with true and predicted labels
  (`visuals/val_predictions`); at the end, the `num_images` test samples the best model gets most wrong
  (`visuals/test_most_wrong`). Image inputs only.
- `figures`: at the end, the test confusion matrix (`visuals/confusion_matrix`) and a precision-recall curve per
  class (`pr_curve/<class>`); for regression, predictions against targets (`visuals/predictions`).
- `projector`: at the end, penultimate-layer features of `projector_samples` test samples (PROJECTOR tab).

Nothing here runs in the hot loop. The end-of-fit pictures share one extra pass of the best model over the test
split (`predictions.predict`), skipped when the run has no test metrics (a pruned sweep trial). A picture that
cannot be drawn costs a one-line warning, never the run.

They go to the run's own event file, through `TensorBoardLogger`'s writer: one file per run, purged together
with the scalars when a run resumes. That writer is closed in `TensorBoardLogger.on_fit_end`, so this callback
must come before it in the callback list (`default_callbacks`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from trainctl.callbacks.figures import SEQUENCES, write_classification, write_regression
from trainctl.callbacks.images import (ValidationGrid, add_picture, is_image_batch, is_image_shape, labelled_samples,
                                      most_wrong_picture)
from trainctl.callbacks.predictions import predict, unwrapped
from trainctl.callbacks.projector import write_embedding
from trainctl.callbacks.tensorboard import TensorBoardLogger
from trainctl.data.splits import DataSpec
from trainctl.engine.events import Callback, EpochEnd
from trainctl.engine.step import Trainer

log = logging.getLogger("trainctl")

# Under `visuals/`, which sorts after `val/`: TensorBoard's Time Series orders its groups by tag, so pictures never
# push the curves down.
VAL_TAG = "visuals/val_predictions"
TRAIN_TAG = "visuals/train_samples"
WORST_TAG = "visuals/test_most_wrong"


def wanted(options: DictConfig) -> bool:
    """Whether any of the pictures here is switched on."""
    return bool(options.images or options.figures or options.projector)


def class_names(spec: DataSpec) -> list[str]:
    return list(spec.class_names) or [str(c) for c in range(spec.num_classes)]


def tensorboard_writer(trainer: Trainer) -> Any:
    """The run's open TensorBoard writer, or None (no TensorBoardLogger, or already closed)."""
    return next((getattr(c, "writer", None) for c in trainer.events.callbacks if isinstance(c, TensorBoardLogger)),
                None)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _safely(option: str, what: str, draw: Callable[[], None]) -> bool:
    """Draw an optional picture; a failure is one warning line. Returns whether it worked."""
    try:
        draw()
        return True
    except Exception as e:
        log.warning("tensorboard.%s: could not draw %s: %s", option, what, _first_line(e))
        return False


class PredictionPictures(Callback):
    """Images, figures and projector data of the model's predictions (see the module's docstring)."""

    def __init__(self, options: DictConfig) -> None:
        self.images, self.figures, self.projector = bool(options.images), bool(options.figures), bool(options.projector)
        self.num_images, self.projector_samples = int(options.num_images), int(options.projector_samples)
        self.projector_pixels = bool(options.get("projector_pixels", False))
        self.grid: ValidationGrid | None = None
        self.grid_off = False  # no classified images, or drawing failed once: not tried again each epoch

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        writer = tensorboard_writer(trainer)
        if not self.images or self.grid_off or writer is None:
            return
        if end.epoch == 1:  # the writer opens after this callback's fit start; a resumed run past epoch 1 has it
            _safely("images", "the training samples", lambda: self._training_samples(trainer, writer))
        if not _safely("images", "the validation predictions", lambda: self._validation(trainer, writer, end.epoch)):
            self.grid_off = True

    def _training_samples(self, trainer: Trainer, writer: Any) -> None:
        first = self._first_batch(trainer, trainer.data.train)
        if first is not None:
            picture = labelled_samples(*first, trainer.cfg.dataset, class_names(trainer.data.spec))
            add_picture(writer, TRAIN_TAG, picture, 0)

    def _validation(self, trainer: Trainer, writer: Any, epoch: int) -> None:
        if self.grid is None:
            self.grid = self._first_validation_batch(trainer)
            if self.grid is None:
                self.grid_off = True
                return
        model, settings = unwrapped(trainer.eval_model), trainer.settings
        model.eval()  # as validation left it; the next epoch switches back to training
        with torch.inference_mode(), settings.autocast():
            logits = model(settings.prepare(self.grid.x))
        add_picture(writer, VAL_TAG, self.grid.picture(logits), epoch)

    def _first_validation_batch(self, trainer: Trainer) -> ValidationGrid | None:
        """The grid of the first validation samples, or None when they are no classified images (skipped)."""
        first = self._first_batch(trainer, trainer.data.val)
        return None if first is None else ValidationGrid(*first, trainer.cfg.dataset, class_names(trainer.data.spec))

    def _first_batch(self, trainer: Trainer, split: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The first `num_images` samples of `split` in stored order, normalised as evaluation sees them, or None
        when they are no classified images (skipped)."""
        data = trainer.data
        if data.spec.task != "classification" or not is_image_shape(data.spec.input_shape):
            return None
        # A streamed split's DataLoader draws its seed from the global generator: leave the run's random state
        # exactly as it was, so pictures on or off train the same weights.
        with torch.random.fork_rng(devices=[]):
            batches = split.ordered(self.num_images, data.eval_transform)
            first = next(iter(batches), None)
            getattr(batches, "close", lambda: None)()
        if first is None or not is_image_batch(first[0]):
            return None
        return first[0], first[1]

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or not any(k.startswith("test/") for k in result):
            return  # a pruned trial has no test pass, and nothing here is worth a pass of its own
        spec, cfg = trainer.data.spec, trainer.cfg
        classification = spec.task == "classification"
        # Only what has its data: the most wrong images need image inputs (known from the spec, before the pass).
        worst = self.num_images if self.images and classification and is_image_shape(spec.input_shape) else 0
        first = max(self.projector_samples if self.projector else 0,
                    SEQUENCES if self.figures and not classification else 0)
        if not (worst or self.figures or self.projector):
            return
        try:
            predictions = predict(trainer.eval_model, trainer.data.test, trainer.data, trainer.settings,
                                  cfg.trainer.eval_batch_size, cfg.trainer.max_eval_batches, worst, first,
                                  features=self.projector)
        except Exception as e:
            log.warning("tensorboard: no test pictures, the test pass for them failed: %s", _first_line(e))
            return
        step, names = int(result["best_epoch"]), class_names(spec)
        if worst and is_image_batch(predictions.worst_inputs):
            _safely("images", "the most wrong test images", lambda: add_picture(
                writer, WORST_TAG, most_wrong_picture(predictions, names, cfg.dataset), step))
        if self.figures and classification:
            _safely("figures", "the confusion matrix and PR curves",
                    lambda: write_classification(writer, predictions, names, step))
        elif self.figures:
            _safely("figures", "predictions against targets", lambda: write_regression(writer, predictions, step))
        if self.projector and predictions.features is None:
            log.warning("tensorboard.projector: %s has no nn.Linear layer, whose input would be the features to "
                        "show; no projector data", type(unwrapped(trainer.raw_model)).__name__)
        elif self.projector:
            _safely("projector", "the test features", lambda: write_embedding(
                writer, predictions, names if classification else [], cfg.dataset, step, self.projector_pixels))
