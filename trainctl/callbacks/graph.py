"""The model graph in TensorBoard's GRAPHS tab (`tensorboard.graph=true`), traced once when training starts.

torch's `SummaryWriter.add_graph` traces the model (`torch.jit.trace`) on one validation sample. Tracing leaves
no mark on the run: it runs without gradients, in eval mode (batch norm keeps its statistics) with every
module's mode restored afterwards, and with the random state forked. A model the tracer cannot follow (outputs
that are not tensors, inputs it cannot take) costs a one-line warning, never the run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any

import torch
from torch import nn

from trainctl.callbacks.tensorboard import TensorBoardLogger
from trainctl.engine.events import Callback
from trainctl.engine.step import Trainer

log = logging.getLogger("trainctl")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def write_graph(writer: Any, model: nn.Module, sample: torch.Tensor) -> str | None:
    """Trace `model` on `sample` (a batch) into `writer`'s graph; returns why it could not, or None."""
    modes = [(m, m.training) for m in model.modules()]
    forked = [sample.device] if sample.device.type == "cuda" else []
    try:
        # torch prints the tracer's error and a line of its own to stdout, and the tracer warns about every
        # Python value it freezes: the one warning line below says what matters.
        with torch.random.fork_rng(devices=forked), torch.no_grad(), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model.eval()
            writer.add_graph(model, sample)
        return None
    except Exception as e:
        return _first_line(e)
    finally:
        for module, training in modes:
            module.training = training


def first_sample(trainer: Trainer) -> torch.Tensor:
    """The first validation sample, as a batch of one on the training device, as the model sees it."""
    x, _ = next(iter(trainer.data.val.ordered(1, trainer.data.eval_transform)))
    return trainer.settings.prepare(x.to(trainer.device))


class ModelGraph(Callback):
    """Writes the graph into the run's own event file, through the TensorBoard logger's writer (so it must come
    after that logger in the callback list); listens to no step."""

    def on_fit_start(self, trainer: Trainer) -> None:
        writer = next((c.writer for c in trainer.events.callbacks if isinstance(c, TensorBoardLogger)), None)
        if writer is None:
            log.warning("tensorboard.graph: no TensorBoard writer in this run; no graph written")
            return
        try:
            sample = first_sample(trainer)
        except Exception as e:  # an empty validation split, a loader that fails
            problem: str | None = f"no validation sample to trace it on: {_first_line(e)}"
        else:
            problem = write_graph(writer, trainer.raw_model, sample)
        if problem is not None:
            log.warning("tensorboard.graph: the model graph could not be traced (%s); the run goes on without it",
                        problem)
