"""Model builders: `build_model(cfg, spec) -> nn.Module`. Input shape and class count come from the data spec.

Here: the registry, the input-size and memory checks every builder uses, and the mlp; the convnets are in
`convnets.py`, the sequence models in `recurrent.py`, the layers they choose by name in `layers.py`."""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainctl.components.layers import activation, dropout, linear_norm
from trainctl.components.naming import named_sequential
from trainctl.components.shapes import conv_pool_size, pair, stack_shapes
from trainctl.config.targets import has_target, instantiate_target
from trainctl.config.schemas import SCHEMAS
from trainctl.config.schemas.models import chosen_norm
from trainctl.data.memory import available_bytes, format_bytes, is_out_of_memory
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.registry import Registry

MODELS: Registry = Registry("model")


def flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Size of `features`' output for one sample: by torch's shape formulas for a plain stack (no forward pass,
    so no compiler import when building on the meta device), else by a dry run."""
    shapes = stack_shapes(features, input_shape)
    if shapes:
        return math.prod(shapes[-1])
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def need_image(name: str, spec: DataSpec) -> None:
    if len(spec.input_shape) != 3:
        raise UserError(
            f"model '{name}' needs images (C, H, W) but the dataset gives inputs of shape {spec.input_shape}: "
            "use model=mlp for non-image data"
        )


# ---- input sizes: which layer a too-small image vanishes in, and the smallest size that works ---------------
SPATIAL_END = (nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)  # sizes stop mattering here
MAX_SIDE = 1 << 20


def _walk(layers: nn.Module, size: tuple[int, int]) -> Iterator[tuple[str, nn.Module, tuple, tuple]]:
    """(name, layer, input size, output size) for each layer up to the first that ends the spatial part."""
    for name, layer in layers.named_children():
        if isinstance(layer, SPATIAL_END):
            return
        out = conv_pool_size(layer, size) or size  # other layers keep the size
        yield name, layer, size, out
        size = out


def _first_problem(layers: nn.Module, size: tuple[int, int], kernel_fits: bool) -> tuple | None:
    """The first layer whose output vanishes (or, with `kernel_fits`, whose conv kernel exceeds its input)."""
    for name, layer, size_in, size_out in _walk(layers, size):
        if min(size_out) < 1:
            return name, layer, size_in, size_out, "vanishes"
        if kernel_fits and isinstance(layer, nn.Conv2d) and any(
                k > n for k, n in zip(pair(layer.kernel_size), size_in)):
            return name, layer, size_in, size_out, "kernel"
    return None


def smallest_input(layers: nn.Module, kernel_fits: bool = False) -> int | None:
    """The smallest side of a square image that passes every layer, by bisection (output sizes only grow with
    the input size); None when even MAX_SIDE does not."""
    if _first_problem(layers, (MAX_SIDE, MAX_SIDE), kernel_fits):
        return None
    low, high = 1, MAX_SIDE  # the answer lies in (low - 1, high]
    while low < high:
        mid = (low + high) // 2
        if _first_problem(layers, (mid, mid), kernel_fits):
            low = mid + 1
        else:
            high = mid
    return high


def _describe(layer: nn.Module) -> str:
    kernel = getattr(layer, "kernel_size", None)
    return f"{type(layer).__name__} {'x'.join(map(str, pair(kernel)))}" if kernel is not None else type(layer).__name__


def check_input_size(name: str, layers: nn.Module, input_shape: tuple[int, ...], fix: str,
                     kernel_key: str | None = None) -> None:
    """Refuse images that a layer of `layers` shrinks to nothing, naming the layer and the smallest size that
    works; with `kernel_key` (the config key setting the conv kernels) also refuse a kernel larger than the
    input its layer sees, which mostly multiplies padding and costs its square in time."""
    problem = _first_problem(layers, tuple(input_shape[1:]), kernel_key is not None)
    if problem is None:
        return
    layer_name, layer, (h, w), (oh, ow), kind = problem
    where = f"layer {layer_name} ({_describe(layer)})"
    shape = "x".join(map(str, input_shape))
    side = smallest_input(layers, kernel_key is not None)
    larger = "" if side is None else (f" The smallest input it takes is {side}x{side} "
                                      f"(dataset.image_size=[{side},{side}] for an image folder).")
    if kind == "kernel":
        raise UserError(f"{kernel_key}={max(pair(layer.kernel_size))} is larger than the {h}x{w} input that {where} "
                        f"of model '{name}' sees on {shape} inputs: lower {kernel_key} to at most {min(h, w)}, "
                        f"or use larger images.{larger}")
    raise UserError(f"model '{name}' cannot take {shape} inputs: {where} shrinks its {h}x{w} input to {oh}x{ow}. "
                    f"Fix: {fix}, or use larger images.{larger}")


def check_norm_positions(name: str, layers: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Instance norm takes a mean over each channel's positions: torch refuses a 1x1 map mid-run; say so now."""
    for layer_name, layer, (h, w), _ in _walk(layers, tuple(input_shape[1:])):
        if isinstance(layer, nn.InstanceNorm2d) and h * w == 1:
            raise UserError(f"model.norm=instance needs more than one position per channel, but layer {layer_name} of "
                            f"model '{name}' sees 1x1 maps on {'x'.join(map(str, input_shape))} inputs. Fix: "
                            "choose model.norm=group, layer or batch, fewer pools, or larger images")


@MODELS.register("mlp")
def build_mlp(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Fully connected net on flattened inputs (default: the PyTorch quickstart's 784-512-512-10, ReLU): flatten,
    fc1, relu1, fc2, relu2, fc (with bn/ln and dropout layers between when asked)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(spec.input_shape)
    norm = chosen_norm(cfg)
    for hidden in cfg.hidden:
        layers += [nn.Linear(width, hidden), *linear_norm(norm, hidden), activation(cfg.activation),
                   *dropout(cfg.dropout)]
        width = hidden
    if spec.task == "regression":  # predict the whole target, shaped like it
        layers += [nn.Linear(width, math.prod(spec.target_shape)), nn.Unflatten(1, spec.target_shape)]
    else:
        layers.append(nn.Linear(width, spec.num_classes))
    return named_sequential(layers)


# ---- memory: refuse a model whose parameters cannot fit, before allocating them --------------------------------
# Weights, their gradients and an optimizer's state (Adam keeps two moments): about four copies while training.
TRAINING_COPIES = 4
# The config keys that set a built-in model's size, named when it does not fit.
SIZE_KEYS = {
    "mlp": "model.hidden or the input size (dataset.image_size): the first layer has a weight per input value",
    "cnn": "model.channels or model.kernel_size (or the image size: the linear head grows with its area)",
    "lenet": "the image size (dataset.image_size): LeNet's first linear layer grows with the image area",
    "vgg": "the channel counts in model.layers (or a smaller model.preset) and model.hidden",
    **dict.fromkeys(("rnn", "lstm", "gru"), "model.hidden_size or model.num_layers"),
    "cnn1d": "model.channels or model.kernel_size",
    "resnet": "model.arch (e.g. resnet18)", "torchvision": "model.arch",
}


def _too_large(name: str, what: str) -> UserError:
    keys = SIZE_KEYS.get(name, "the model's size settings")
    return UserError(f"model '{name}' does not fit in memory: {what}. Fix: lower {keys}.")


def activation_elements(model: nn.Module, input_shape: tuple[int, ...]) -> int | None:
    """Elements of every layer's output for one sample: what a forward pass keeps for the backward pass. Run on
    the meta device (shapes only); None when an op has no meta kernel. A plain stack of known layers is sized by
    formula instead (see components/shapes.py for why)."""
    shapes = stack_shapes(model, input_shape)
    if shapes is not None:
        return sum(math.prod(shape) for shape in shapes)
    total = [0]

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            total[0] += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        model(torch.empty((1, *input_shape), device="meta"))
    except (NotImplementedError, RuntimeError, TypeError, ValueError):
        return None
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]


def check_fits(name: str, build: Callable[[], nn.Module], available: int | None = None,
               input_shape: tuple[int, ...] | None = None, batch_size: int | None = None) -> None:
    """Build the model on the meta device (shapes only: no memory, no random numbers drawn) and refuse it when
    training it would need more memory than is free: its weights, gradients and optimizer state, and, given the
    input shape and batch size, the layer outputs a batch keeps for the backward pass (and their gradients)."""
    available = available_bytes() if available is None else available
    if available is None:
        return
    try:
        with torch.device("meta"):
            sized = build()
    except NotImplementedError:  # an op with no meta kernel in a dry forward: the real build will tell
        return
    params = sum(p.numel() for p in sized.parameters())
    size = sum(t.numel() * t.element_size() for t in (*sized.parameters(), *sized.buffers()))
    if size * TRAINING_COPIES > available:
        raise _too_large(name, f"its {params:,} parameters take {format_bytes(size)}, training needs about "
                               f"{TRAINING_COPIES}x that, and {format_bytes(available)} is free")
    per_sample = activation_elements(sized, input_shape) if input_shape and batch_size else None
    if per_sample is not None:
        batch_bytes = per_sample * 4 * 2 * batch_size  # float32 outputs, kept and then their gradients
        if size * TRAINING_COPIES + batch_bytes > available:
            raise UserError(
                f"model '{name}' does not fit in memory at trainer.batch_size={batch_size}: its layer outputs take "
                f"about {format_bytes(batch_bytes)} per batch on top of {format_bytes(size * TRAINING_COPIES)} for "
                f"its weights and optimizer state, and {format_bytes(available)} is free. Fix: lower "
                f"trainer.batch_size or {SIZE_KEYS.get(name, 'the model size settings')}.")


def with_defaults(cfg: DictConfig) -> DictConfig:
    """`cfg` plus the keys it lacks, from its schema: a config stored before a key existed (an exported model's
    description) builds what it built then, since each newer key's default keeps the older behaviour. Keys it
    has keep their order, which error messages list."""
    schema = SCHEMAS["model"].get(cfg.get("name"))
    if schema is None:
        return cfg
    defaults = OmegaConf.to_container(OmegaConf.structured(schema))
    missing = {key: value for key, value in defaults.items() if key not in cfg}
    return OmegaConf.merge(cfg, missing) if missing else cfg


def build_model(cfg: DictConfig, spec: DataSpec, batch_size: int | None = None) -> nn.Module:
    if has_target(cfg):
        model = instantiate_target(cfg, input_shape=spec.input_shape, num_classes=spec.num_classes, spec=spec)
        if not isinstance(model, nn.Module):
            raise UserError(f"model._target_ {cfg._target_} built a {type(model).__name__}, not a torch.nn.Module")
        return model
    if spec.task == "regression" and cfg.name in CLASSIFIERS:
        raise UserError(f"model '{cfg.name}' is a classifier but the dataset is a regression task: "
                        "use model=mlp, rnn, lstm, gru or cnn1d")
    builder = MODELS.get(cfg.name)
    cfg = with_defaults(cfg)
    if cfg.get("init") and cfg.get("weights") is not None:  # before the weights are fetched
        raise UserError(f"model.init={cfg.init} would overwrite the pretrained weights of model.weights="
                        f"{cfg.weights}: set one of them")
    try:
        if cfg.get("weights") is None:  # pretrained archs have a known size; sizing would load the weights twice
            check_fits(cfg.name, lambda: builder(cfg, spec), input_shape=spec.input_shape, batch_size=batch_size)
        model = builder(cfg, spec)
    except (MemoryError, RuntimeError, ValueError) as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if is_out_of_memory(e):  # the estimate is not everything: other processes allocate too
            raise _too_large(cfg.name, first_line) from None
        # torch refusing a layer's arguments: values out of the range the schema allows, from a caller that
        # skipped validation (the CLI and train() validate first)
        settings = ", ".join(f"model.{k}={v}" for k, v in cfg.items() if k != "name")
        raise UserError(f"model '{cfg.name}' cannot be built with {settings}: {first_line}") from None
    if cfg.get("init"):  # after sizing, which draws no random numbers: the seed decides these values
        from trainctl.components.init import initialise

        initialise(model, cfg.init)
    return model


CLASSIFIERS = ("cnn", "lenet", "vgg", "resnet", "torchvision")
