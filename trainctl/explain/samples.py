"""The images an explanation is about: the first `n` of a split, as the model sees them and as a person does,
with the model's predictions and the class each one is explained for."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainctl.data.splits import DataSpec, SplitLike, Transform, identity
from trainctl.errors import UserError


@dataclass
class Samples:
    """`pixels` for drawing ([N, C, H, W] in [0, 1], CPU); `inputs` for the model (normalised, on its device)."""

    pixels: torch.Tensor
    inputs: torch.Tensor
    labels: torch.Tensor  # CPU

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Predictions:
    predicted: torch.Tensor  # class index per sample, CPU
    probability: torch.Tensor  # softmax probability of the predicted class, CPU
    explained: torch.Tensor  # the class each map is computed for (the predicted one unless `class=` names one)


def first_samples(split: SplitLike, transform: Transform, n: int, device: torch.device) -> Samples:
    """The first `n` samples of `split` in stored order. Only their batch is read and transformed. The stored
    uint8 pixels are the un-normalised image, so what is drawn is exactly what the dataset holds (no inverse of
    the mean/std arithmetic with its rounding)."""
    raw, labels = next(iter(split.ordered(n, identity)))
    raw, labels = raw[:n], labels[:n]
    inputs = transform(raw.to(device), None)
    if raw.dtype == torch.uint8:
        pixels = raw.float().div(255.0)
    else:  # a dataset that stores floats: stretch each image to [0, 1] for display
        flat = raw.float().flatten(1)
        low, high = flat.amin(1).view(-1, 1, 1, 1), flat.amax(1).view(-1, 1, 1, 1)
        pixels = (raw.float() - low) / (high - low).clamp_min(1e-12)
    return Samples(pixels.cpu(), inputs, labels.cpu())


def class_index(value: str, spec: DataSpec) -> int:
    """`class=` as an index or a class name (case-insensitive); a UserError lists the classes otherwise."""
    names = class_names(spec)
    if value.lstrip("-").isdigit():
        index = int(value)
        if 0 <= index < spec.num_classes:
            return index
        raise UserError(f"class={value} is out of range: this model has classes 0 to {spec.num_classes - 1}")
    lowered = [name.lower() for name in names]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    listed = ", ".join(f"{i}={name}" for i, name in enumerate(names))
    raise UserError(f"class={value} is not a class of this dataset: give an index or a name ({listed})")


def class_names(spec: DataSpec) -> tuple[str, ...]:
    return spec.class_names or tuple(map(str, range(spec.num_classes)))


def predict(model: nn.Module, inputs: torch.Tensor, explained_class: int | None) -> Predictions:
    """The model's predicted class and its probability per sample (one forward pass, no gradients)."""
    with torch.no_grad():
        probabilities = torch.softmax(model(inputs).float(), dim=1).cpu()
    probability, predicted = probabilities.max(dim=1)
    explained = predicted if explained_class is None else torch.full_like(predicted, explained_class)
    return Predictions(predicted, probability, explained)
