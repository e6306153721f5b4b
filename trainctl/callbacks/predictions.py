"""One inference pass over a split at the end of training, shared by every picture that needs predictions: the
most-wrong test images, the confusion matrix, the precision-recall curves, the regression figure and the
projector each read the same `Predictions` instead of running the model again.

What is kept on the host is small: per-sample outputs and losses, the `keep_worst` samples with the highest loss
(inputs included, so a streamed split needs no second read) and the inputs (and penultimate features) of the
first `keep_first` samples. Everything stays on the device until the pass ends: one host copy per tensor.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from trainctl.data.splits import DataBundle, SplitLike
from trainctl.engine.step import StepSettings

log = logging.getLogger("trainctl")


@dataclass
class Predictions:
    """A split's predictions in order, on the CPU."""

    targets: torch.Tensor  # class indices [N], or regression targets [N, ...]
    outputs: torch.Tensor  # class probabilities [N, C], or regression predictions [N, ...]
    loss: torch.Tensor  # per sample [N]: cross-entropy of the true class, or mean squared error
    worst: torch.Tensor  # indices of the `keep_worst` highest losses, worst first
    worst_inputs: torch.Tensor  # their inputs, as the model saw them (normalised)
    first_inputs: torch.Tensor  # the inputs of the first `keep_first` samples
    features: torch.Tensor | None  # their penultimate-layer features [keep_first, D], when asked for


def unwrapped(model: nn.Module) -> nn.Module:
    """The module itself, not its `torch.compile` wrapper: a new batch size would recompile the wrapper, and
    hooks are only reliable on the eager module."""
    return getattr(model, "_orig_mod", model)


def last_linear(model: nn.Module) -> nn.Linear | None:
    """The model's last `nn.Linear` (registration order: the classifier head), whose input is the penultimate
    layer's features."""
    return next((m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), None)


def per_sample_loss(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Cross-entropy of the true class (a sample the model gets most wrong has the highest), or the mean
    squared error of each sample: independent of the run's own (reduced) loss function."""
    if task == "classification":
        return F.cross_entropy(outputs, targets, reduction="none")
    return (outputs - targets).pow(2).flatten(1).mean(1)


class _FeatureHook:
    """Records the input of a layer for the first `limit` samples, then nothing."""

    def __init__(self, layer: nn.Module, limit: int) -> None:
        self.limit, self.kept, self.parts = limit, 0, []
        self.handle = layer.register_forward_pre_hook(self)

    def __call__(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if self.kept < self.limit:
            part = inputs[0].detach().flatten(1)[: self.limit - self.kept].float()
            self.parts.append(part)
            self.kept += part.shape[0]


def predict(model: nn.Module, split: SplitLike, data: DataBundle, settings: StepSettings, batch_size: int,
            max_batches: int | None, keep_worst: int, keep_first: int, features: bool) -> Predictions:
    """Run `model` once over `split` (its first `max_batches` batches when given), as evaluation runs it.

    `features`: record the input of the model's last `nn.Linear` for the first `keep_first` samples; a model
    without one gets `features=None` (the caller warns)."""
    model = unwrapped(model)
    model.eval()
    head = last_linear(model) if features else None
    hook = _FeatureHook(head, keep_first) if head is not None else None
    targets, outputs, losses, first = [], [], [], []
    worst_loss = worst_index = worst_inputs = None
    seen = 0
    try:
        with torch.inference_mode():
            for x, y in itertools.islice(split.ordered(batch_size, data.eval_transform), max_batches):
                with settings.autocast():
                    out = model(settings.prepare(x))
                out = out.float()
                loss = per_sample_loss(out, y, data.spec.task)
                targets.append(y)
                outputs.append(out.softmax(1) if data.spec.task == "classification" else out)
                losses.append(loss)
                if seen < keep_first:
                    first.append(x[: keep_first - seen])
                index = torch.arange(seen, seen + len(y), device=loss.device)
                if worst_loss is not None:  # the running top-k: a few tensor ops per batch, no host sync
                    loss, index, x = (torch.cat([worst_loss, loss]), torch.cat([worst_index, index]),
                                      torch.cat([worst_inputs, x]))
                top = loss.topk(min(keep_worst, len(loss))).indices
                worst_loss, worst_index, worst_inputs = loss[top], index[top], x[top]
                seen += len(y)
    finally:
        if hook is not None:
            hook.handle.remove()
    if not targets:
        raise ValueError("the split has no samples")
    return Predictions(
        targets=torch.cat(targets).cpu(), outputs=torch.cat(outputs).cpu(), loss=torch.cat(losses).cpu(),
        worst=worst_index.cpu(), worst_inputs=worst_inputs.float().cpu(),
        first_inputs=torch.cat(first).float().cpu() if first else torch.empty(0),
        features=torch.cat(hook.parts).cpu() if hook is not None and hook.parts else None)
