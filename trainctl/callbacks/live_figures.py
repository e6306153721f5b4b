"""Figures that show a small model learning, as the tutorials redraw them while training:

- regression (`dataset=sine`): predictions against targets for the first validation sequences,
  `visuals/val_sequence_predictions`, every `tensorboard.figures_every_n_epochs` epochs (and at the last);
- classifiers of two features (`dataset=blobs`): the decision regions with the training points over them,
  `visuals/decision_regions`, at those epochs too; without them, at the end for the best model when
  `tensorboard.figures` is on (at the best epoch's step).

Drawn outside the hot loop on a few hundred samples; the random state is left as it was (no random numbers are
drawn), so a run trains the same with them or without. A figure that cannot be drawn is one warning, never the
run.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from trainctl.callbacks.figures import SEQUENCES, regression_figure, render
from trainctl.callbacks.images import add_picture
from trainctl.callbacks.pictures import _safely, class_names, tensorboard_writer
from trainctl.callbacks.predictions import Predictions, unwrapped
from trainctl.callbacks.regions import MAX_POINTS, has_two_features, regions_figure
from trainctl.engine.events import Callback, EpochEnd
from trainctl.engine.step import Trainer
from trainctl.metrics import REGRESSION

REGRESSION_TAG, REGIONS_TAG = "visuals/val_sequence_predictions", "visuals/decision_regions"


class LiveFigures(Callback):
    def __init__(self, every: int | None, at_end: bool) -> None:
        self.every, self.at_end = every, at_end

    def on_epoch_end(self, trainer: Trainer, end: EpochEnd) -> None:
        last = end.epoch == trainer.cfg.trainer.epochs
        if self.every is None or (end.epoch % self.every and not last):
            return
        self._draw(trainer, end.epoch, "epoch")

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        spec = trainer.data.spec
        # drawn each N epochs already: an end picture at the best epoch's step would be a second one there
        if self.at_end and self.every is None and has_two_features(spec.input_shape, spec.task) \
                and "best_epoch" in result:
            self._draw(trainer, int(result["best_epoch"]), "best epoch")

    def _draw(self, trainer: Trainer, step: int, when: str) -> None:
        writer, spec = tensorboard_writer(trainer), trainer.data.spec
        if writer is None:
            return
        model = unwrapped(trainer.eval_model)
        was_training = trainer.raw_model.training
        if spec.task == REGRESSION:
            _safely("figures_every_n_epochs", "predictions against targets",
                    lambda: add_picture(writer, REGRESSION_TAG, render(self._regression(trainer, model, step)), step))
        elif has_two_features(spec.input_shape, spec.task):
            train = trainer.data.train
            x = trainer.data.eval_transform(train.x[:MAX_POINTS], None)  # as the model takes them
            title = f"decision regions, {when} {step}: training points over the predicted classes"
            _safely("figures", "the decision regions", lambda: add_picture(writer, REGIONS_TAG, render(
                regions_figure(model, x, train.y[:MAX_POINTS], class_names(spec), title)), step))
        trainer.raw_model.train(was_training)

    @staticmethod
    @torch.inference_mode()
    def _regression(trainer: Trainer, model: torch.nn.Module, epoch: int) -> Any:
        data = trainer.data
        x, y = next(itertools.islice(data.val.ordered(SEQUENCES, data.eval_transform), 1))
        model.eval()
        with trainer.settings.autocast():
            out = model(trainer.settings.prepare(x)).float()
        empty = torch.empty(0)
        predictions = Predictions(y.float().cpu(), out.cpu(), empty, empty, empty, x.float().cpu(), None)
        return regression_figure(predictions, f"validation split, epoch {epoch}: prediction against target")
