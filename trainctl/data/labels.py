"""`dataset.label_transforms`: what the loss sees of the labels, e.g. one-hot vectors as in the tutorial's
`target_transform=Lambda(lambda y: torch.zeros(10).scatter_(0, y, 1))`.

Each entry is a `_target_` (checked and built as the input transforms are: `trainctl.data.user_targets`) called on
a batch of labels on the training device (class numbers `[N]` for a classifier) and returning the loss's targets
(`[N, C]` class probabilities for cross-entropy). Only the loss takes them, in training and evaluation alike;
accuracy and the other metrics count against the class numbers, so they mean what they always do.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from trainctl.data.user_targets import build_callable
from trainctl.errors import UserError, what_raised


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class numbers `[N]` as float one-hot rows `[N, num_classes]`, the tutorial's label transform."""
    return torch.nn.functional.one_hot(y.long(), num_classes).float()


def build_label_transforms(items: Any) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    if not items:
        return []
    if not isinstance(items, (list, tuple)) and not hasattr(items, "__iter__"):
        raise UserError("dataset.label_transforms must be a list of transforms, each with a _target_")
    return [build_callable(item, f"dataset.label_transforms.{i}") for i, item in enumerate(items)]


class LabelTransformedLoss(nn.Module):
    """`loss(output, transform(labels))`; keeps the wrapped loss's `reduction`, which the loop reads."""

    def __init__(self, loss: nn.Module, transforms: list[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        super().__init__()
        self.loss, self.transforms = loss, transforms
        self.reduction = getattr(loss, "reduction", "mean")

    def forward(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        for i, fn in enumerate(self.transforms):
            try:
                out = fn(labels)
            except Exception as e:  # noqa: BLE001  (the user's code: say whose, and its first line)
                raise UserError(f"dataset.label_transforms.{i} raised {what_raised(e)}. It is called with "
                                f"a batch of labels of shape {list(labels.shape)} ({labels.dtype}).") from None
            if not isinstance(out, torch.Tensor) or out.shape[:1] != labels.shape[:1]:
                raise UserError(f"dataset.label_transforms.{i} must return a tensor with one row per label "
                                f"({labels.shape[0]}); it returned {type(out).__name__} "
                                f"{list(getattr(out, 'shape', ()))}")
            labels = out
        return self.loss(output, labels)


def with_label_transforms(loss: nn.Module, items: Any) -> nn.Module:
    """The loss, behind the user's label transforms when there are any."""
    transforms = build_label_transforms(items)
    return LabelTransformedLoss(loss, transforms) if transforms else loss
