"""Per-sample output shapes of a plain layer stack, by torch's own formulas rather than a forward pass.

The builders and the memory check need each layer's output size before any weight exists. A dry forward on the
meta device gives it for any model, but its kernels import torch's compiler stack (torch._dynamo, about 2 s of
CPU) on first use, which every command would pay at start. The stacks trainctl builds are nn.Sequential trees of
the layers below, so their shapes are computed here; anything else (a torchvision or user model) returns None and
the caller falls back to the dry forward.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import nn

# Layers whose output has their input's shape.
SHAPE_KEEPING = (nn.ReLU, nn.GELU, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Identity,
                 nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d,
                 nn.Dropout, nn.Dropout2d)


def leaf_layers(model: nn.Module) -> list[nn.Module] | None:
    """The layers of a tree of nn.Sequential containers in the order they run; None for any other container."""
    if not isinstance(model, nn.Sequential):
        return None if list(model.children()) else [model]
    leaves: list[nn.Module] = []
    for child in model:
        inner = leaf_layers(child)
        if inner is None:
            return None
        leaves += inner
    return leaves


def pair(value: object) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))  # type: ignore[index]


def spatial_length(length: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Output length of a conv or pool along one spatial dimension (torch's formula)."""
    room = length + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-room // stride) if ceil_mode else room // stride) + 1
    if ceil_mode and room >= 0 and (out - 1) * stride >= length + padding:
        out -= 1  # torch's rule: the last window starts inside the input or the left padding
    return out


def conv_pool_size(layer: nn.Module, size: tuple[int, int]) -> tuple[int, int] | None:
    """Output height and width of a 2-d conv or pool (sizes below 1 included, for callers that look for them);
    None for other layers."""
    if isinstance(layer, nn.Conv2d):
        if layer.padding == "same":
            return size
        padding = (0, 0) if layer.padding == "valid" else pair(layer.padding)
        kernel, stride, dilation = pair(layer.kernel_size), pair(layer.stride), pair(layer.dilation)
        ceil_mode = False
    elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel, padding = pair(layer.kernel_size), pair(layer.padding)
        stride, dilation = pair(layer.stride or layer.kernel_size), pair(getattr(layer, "dilation", 1))
        ceil_mode = layer.ceil_mode
    else:
        return None
    return (spatial_length(size[0], kernel[0], stride[0], padding[0], dilation[0], ceil_mode),
            spatial_length(size[1], kernel[1], stride[1], padding[1], dilation[1], ceil_mode))


def output_shape(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """One sample's output shape for `layer` given its input shape (no batch dimension); None when unknown."""
    if isinstance(layer, SHAPE_KEEPING):
        return shape
    if isinstance(layer, nn.Linear):
        return (*shape[:-1], layer.out_features) if shape and shape[-1] == layer.in_features else None
    ndim = len(shape) + 1  # torch counts the batch dimension
    if isinstance(layer, nn.Flatten):
        start, end = layer.start_dim % ndim, layer.end_dim % ndim
        if start == 0 or end < start:
            return None
        return (*shape[:start - 1], math.prod(shape[start - 1:end]), *shape[end:])
    if isinstance(layer, nn.Unflatten):
        dim, sizes = layer.dim % ndim if isinstance(layer.dim, int) else 0, tuple(layer.unflattened_size)
        if dim == 0 or not all(isinstance(n, int) and n > 0 for n in sizes) or math.prod(sizes) != shape[dim - 1]:
            return None
        return (*shape[:dim - 1], *sizes, *shape[dim:])
    if len(shape) != 3:
        return None
    if isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size = pair(layer.output_size) if layer.output_size is not None else None
        if size is None or None in size:
            return None
        return (shape[0], *size)
    if isinstance(layer, nn.Conv2d) and shape[0] != layer.in_channels:
        return None
    size = conv_pool_size(layer, (shape[1], shape[2]))
    if size is None:
        return None
    return (layer.out_channels if isinstance(layer, nn.Conv2d) else shape[0], *size)


def stack_shapes(model: nn.Module, input_shape: Sequence[int]) -> list[tuple[int, ...]] | None:
    """Each layer's per-sample output shape, in order, for a plain stack of known layers; None otherwise (or
    when a size reaches zero, which the caller's own checks explain)."""
    layers = leaf_layers(model)
    if layers is None:
        return None
    shapes, shape = [], tuple(int(n) for n in input_shape)
    for layer in layers:
        next_shape = output_shape(layer, shape)
        if next_shape is None or min(next_shape, default=1) < 1:
            return None
        shapes.append(next_shape)
        shape = next_shape
    return shapes
