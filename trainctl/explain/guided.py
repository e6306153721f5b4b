"""Guided backpropagation (Springenberg et al. 2015): the input gradient with every ReLU's backward pass letting
through only positive gradients, so the map keeps what speaks *for* the class. Done with full backward hooks on
the model's `nn.ReLU` modules for the length of one pass; ReLUs called as functions cannot be reached, so a model
without `nn.ReLU` modules is refused rather than given a plain gradient under this name."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from trainctl.errors import UserError


@contextmanager
def guided_relus(model: nn.Module, model_name: str) -> Iterator[None]:
    """Inside the block, each `nn.ReLU` of `model` passes back only positive gradients (ReLU's own backward has
    already zeroed those where its input was negative). In-place ReLUs run out of place meanwhile: a backward
    hook cannot follow an in-place output."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise UserError(f"method=guided needs ReLU activations (nn.ReLU layers), and the {model_name} has none: "
                        "use method=saliency")
    inplace = [relu.inplace for relu in relus]
    handles = []
    try:
        for relu in relus:
            relu.inplace = False
            handles.append(relu.register_full_backward_hook(
                lambda _, grad_input, __: tuple(None if g is None else g.clamp(min=0) for g in grad_input)))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for relu, flag in zip(relus, inplace):
            relu.inplace = flag


def input_gradients(model: nn.Module, inputs: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """d score(class) / d input for each sample, the same shape as `inputs` (eval mode: samples do not mix, so
    one backward pass gives all)."""
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        scores = model(x)
        chosen = scores.gather(1, classes.to(scores.device).view(-1, 1)).sum()
        [gradient] = torch.autograd.grad(chosen, x)
    return gradient.detach()
