"""Layer names. The built-in models name their layers as the PyTorch tutorials and torchvision's ResNet do
(`conv1`, `bn1`, `relu1`, `pool1`, ..., `fc1`, `fc2`, and `fc` for the classifier) rather than by their index in
an `nn.Sequential`; histograms, `model.freeze`, `explain layer=` and the summaries show those names.

Earlier versions named them by index (`3.weight`, `features.0`). Only the names changed, never the modules or
their order, so an index name converts by position: `legacy_name` gives the old name of a layer, and the helpers
below accept old names where users and checkpoints give them (checkpoints keep loading, `model.freeze=[0]` and
`layer=3` keep working). Nothing here runs code from a file: it renames dict keys.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Iterable, Mapping, TypeVar

from torch import nn

from trainctl.components.layers import ACTIVATIONS

log = logging.getLogger("trainctl")
V = TypeVar("V")

# The name stem of each kind of layer; the first match wins (subclasses before their bases).
KINDS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.Conv1d, "conv"), (nn.Conv2d, "conv"), (nn.Linear, "fc"),
    (nn.BatchNorm1d, "bn"), (nn.BatchNorm2d, "bn"), (nn.LayerNorm, "ln"), (nn.InstanceNorm2d, "inorm"),
    (nn.GroupNorm, "gn"), (nn.MaxPool2d, "pool"), (nn.AvgPool2d, "pool"),
    (nn.AdaptiveAvgPool1d, "avgpool"), (nn.AdaptiveAvgPool2d, "avgpool"),
    (nn.Dropout, "dropout"), (nn.Dropout2d, "dropout"), (nn.Flatten, "flatten"), (nn.Unflatten, "unflatten"),
    *((kind, name) for name, kind in ACTIVATIONS.items()),
)
UNNUMBERED = ("avgpool", "flatten", "unflatten")  # once per stack: a number would only add noise


def kind_of(layer: nn.Module) -> str:
    """A layer's name stem: `conv`, `bn`, `relu`, ... (GroupNorm with one group is the conv layer norm: `ln`)."""
    if isinstance(layer, nn.GroupNorm) and layer.num_groups == 1:
        return "ln"
    return next((stem for kind, stem in KINDS if type(layer) is kind), type(layer).__name__.lower())


def named_layers(layers: Iterable[nn.Module | tuple[str, nn.Module]]) -> OrderedDict[str, nn.Module]:
    """Each layer named by its kind and a count per kind (`conv1`, `relu1`, `pool1`, `conv2`, ...); the last
    linear layer is the classifier, `fc`. A `(name, layer)` pair keeps its given name (a nested `head`)."""
    items = [item if isinstance(item, tuple) else (None, item) for item in layers]
    last_linear = max((i for i, (given, layer) in enumerate(items) if given is None and isinstance(layer, nn.Linear)),
                      default=-1)
    named: OrderedDict[str, nn.Module] = OrderedDict()
    counts: dict[str, int] = {}
    for index, (given, layer) in enumerate(items):
        stem = kind_of(layer)
        counts[stem] = counts.get(stem, 0) + 1
        name = given or ("fc" if index == last_linear else
                         stem if stem in UNNUMBERED and counts[stem] == 1 else f"{stem}{counts[stem]}")
        if name in named:
            raise ValueError(f"two layers named {name}")  # a builder's mistake, caught by the model tests
        named[name] = layer
    return named


def named_sequential(layers: Iterable[nn.Module | tuple[str, nn.Module]]) -> nn.Sequential:
    """An `nn.Sequential` of `layers` under their names (`named_layers`): the same forward pass, parameters in
    the same order, as the plain `nn.Sequential(*layers)`."""
    return nn.Sequential(named_layers(layers))


def legacy_name(model: nn.Module, name: str) -> str:
    """`name` (a dotted module, parameter or buffer name) as trainctl named it before layers had names: every
    child of an `nn.Sequential` by its position."""
    module: nn.Module | None = model
    parts = []
    for part in name.split("."):
        child = module._modules.get(part) if module is not None else None
        if module is None or child is None:  # a parameter or buffer name, or a name the model lacks
            parts.append(part)
            module = None
            continue
        parts.append(str(list(module._modules).index(part)) if isinstance(module, nn.Sequential) else part)
        module = child
    return ".".join(parts)


def module_name(model: nn.Module, given: str) -> str | None:
    """The module `given` names: by its name, or by the index path older versions used (`0`, `features.3`);
    None when neither names a module."""
    modules = dict(model.named_modules())
    if given in modules:
        return given
    return {legacy_name(model, name): name for name in modules if name}.get(given)


def upgrade_state_dict(model: nn.Module, weights: Mapping[str, V]) -> dict[str, V]:
    """`weights` with the index keys of a checkpoint written before layers had names (`3.weight`) renamed to the
    model's names for the same positions (`conv2.weight`); keys the model has, or that name no position of it,
    stay as they are (a checkpoint that does not fit is still refused, by whoever loads it)."""
    own = model.state_dict()
    if all(key in own for key in weights):
        return dict(weights)
    by_position = {legacy_name(model, key): key for key in own}
    renamed: dict[str, V] = {}
    for key, value in weights.items():
        new = key if key in own else by_position.get(key, key)
        renamed[key if new in weights or new in renamed else new] = value
    if renamed.keys() != weights.keys():
        log.debug("read a checkpoint's index names (%s, ...) as the layer names of this trainctl", next(iter(weights)))
    return renamed
