"""`model.init`: how conv and linear weights start, as tutorials set them (`nn.init.kaiming_normal_` on every
conv and linear layer, biases at zero). Null keeps torch's default (Kaiming-uniform with a=√5)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# The ReLU gain for Kaiming: the models' default activation; Xavier's gain is 1.
INIT_FUNCTIONS: dict[str, Callable[[torch.Tensor], object]] = {
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
}
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def initialise(model: nn.Module, how: str) -> None:
    """Re-initialise every conv and linear layer of `model` in place (weights by `how`, biases 0). Draws from
    torch's global generator, so the run's seed decides the values."""
    fill = INIT_FUNCTIONS[how]
    with torch.no_grad():
        for layer in (m for m in model.modules() if isinstance(m, LAYERS)):
            fill(layer.weight)
            if layer.bias is not None:
                layer.bias.zero_()
