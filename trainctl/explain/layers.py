"""Which layer a method looks at: found automatically, or the one `layer=` names, checked before any work.

Layers are named as `model.named_modules()` names them (`conv2`, `head.fc`, `layer4.1.conv2`), the names torchcam
and forward hooks take; the index paths older versions showed (`3`, `features.0`) name the same layers.
"""

from __future__ import annotations

import torch
from torch import nn

from trainctl.components.naming import module_name
from trainctl.errors import UserError
from trainctl.registry import did_you_mean

SHOWN = 6  # layer names listed in a message


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's 2-D conv layers in definition order (CAMs and kernels need one)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def output_shapes(model: nn.Module, sample: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The output shape of every named layer for a batch of one, in the order the layers ran (one forward pass
    with hooks; a layer called twice keeps its last shape)."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_modules():
        if name:
            def record(_: nn.Module, __: object, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    shapes.pop(name, None)
                    shapes[name] = tuple(out.shape)
            handles.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(sample[:1])
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def spatial(shape: tuple[int, ...]) -> bool:
    """A batch of feature maps: [N, C, H, W] with more than one position."""
    return len(shape) == 4 and shape[2] * shape[3] > 1


def _some(names: list[str]) -> str:
    shown = names[-SHOWN:]
    return ", ".join(shown) + (f" (and {len(names) - SHOWN} earlier)" if len(names) > SHOWN else "")


def _hint(name: str, names: list[str]) -> str:
    """'; did you mean 'x'?' when a name is close, else a full stop: the end of a sentence either way."""
    return did_you_mean(name, names) or "."


def _kind(modules: dict[str, nn.Module], given: str, name: str) -> str:
    """'Conv2d', or 'relu1: ReLU' for a layer given by its index."""
    kind = type(modules[name]).__name__
    return kind if given == name else f"{name}: {kind}"


def check_layer(model: nn.Module, given: str, shapes: dict[str, tuple[int, ...]], model_name: str) -> str:
    """The layer `given` names (an index path read by position) when it gives feature maps; otherwise a
    UserError listing some that do."""
    name = module_name(model, given) or given
    maps = [n for n, shape in shapes.items() if spatial(shape)]
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise UserError(f"layer={given} is not a layer of the {model_name}{_hint(given, list(modules)[1:])} "
                        f"Layers with feature maps: {_some(maps) or 'none'}")
    if name not in shapes:
        raise UserError(f"layer={given} ({_kind(modules, given, name)}) does not run in the {model_name}'s forward "
                        f"pass: choose one of {_some(maps)}")
    if not spatial(shapes[name]):
        raise UserError(f"layer={given} ({_kind(modules, given, name)}) gives outputs of shape {shapes[name]}, not "
                        f"feature maps [N, C, H, W]: choose one of {_some(maps)}")
    return name


def cam_layer(model: nn.Module, sample: torch.Tensor, requested: str | None, model_name: str) -> str:
    """The layer a CAM is computed on: `requested` when valid, else the last conv layer to run whose output still
    has spatial positions, else (no such conv) the last layer of any kind with such output: torchcam's own rule
    (`locate_candidate_layer`), applied to the shapes already recorded here for the error messages.

    Why the conv and not the activation after it (torchcam's pick): Grad-CAM weighs each channel by its gradient
    averaged over positions; behind a flatten + linear head (the cnn) those averages are mostly negative, and
    on the non-negative output of a ReLU the map then stays zero for most images."""
    shapes = output_shapes(model, sample)
    if requested is not None:
        return check_layer(model, requested, shapes, model_name)
    modules = dict(model.named_modules())
    maps = [name for name, shape in shapes.items() if spatial(shape)]
    convs = [name for name in maps if isinstance(modules[name], nn.Conv2d)]
    if not maps:
        raise UserError(f"no layer of the {model_name} gives feature maps with more than one position for a CAM: "
                        "use method=saliency")
    return (convs or maps)[-1]


def feature_layer(model: nn.Module, sample: torch.Tensor, requested: str | None, model_name: str) -> str:
    """The layer whose activations `featuremaps` shows: `requested` when valid, else the first conv layer."""
    shapes = output_shapes(model, sample)
    if requested is not None:
        return check_layer(model, requested, shapes, model_name)
    return check_layer(model, conv_layers(model)[0][0], shapes, model_name)


def kernel_layer(model: nn.Module, requested: str | None, model_name: str) -> tuple[str, nn.Conv2d]:
    """The conv layer whose kernels are drawn: `requested` when it is one, else the first."""
    convs = conv_layers(model)
    if requested is None:
        return convs[0]
    name = module_name(model, requested) or requested
    found = dict(convs).get(name)
    if found is None:
        names = [n for n, _ in convs]
        raise UserError(f"layer={requested} is not a conv layer of the {model_name}"
                        f"{_hint(requested, names)} Its conv layers: {_some(names)}")
    return name, found
