"""Schemas of the `model` group."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from trainctl.config.schemas.fields import spec
from trainctl.errors import UserError


# ---- fields several models share (one help text each) -------------------------------------------------------
def freeze_field() -> Any:
    """`model.freeze`, a key of every model (the schemas share no base class); `trainctl.engine.finetune`
    applies it."""
    return spec([], help="module-name prefixes whose parameters are not trained, e.g. [conv1,bn1] or [layer1,layer2] "
                         "(the position numbers of older versions, e.g. [0,3], also work)")


INITS = ["kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform"]


def init_field() -> Any:
    """`model.init`, a key of every model: how conv and linear weights start (`trainctl.components.init`)."""
    return spec(None, help="initialise every conv and linear weight with torch.nn.init's kaiming_normal, "
                           "kaiming_uniform (for ReLU), xavier_normal or xavier_uniform, and their biases with 0; "
                           "null: torch's default", choices=INITS)


ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu", "elu", "leaky_relu", "silu"]
MLP_NORMS = ["none", "batch", "layer"]
CONV_NORMS = ["none", "batch", "layer", "group", "instance"]
POOLS = ["max", "avg"]


def activation_field(where: str) -> Any:
    return spec("relu", help=f"activation {where} (leaky_relu: slope 0.01)", choices=ACTIVATIONS)


def norm_field(conv: bool) -> Any:
    if not conv:
        return spec(None, help="normalisation after each hidden linear layer: batch (BatchNorm1d) or layer "
                               "(LayerNorm); null: model.batch_norm decides", choices=MLP_NORMS)
    return spec(None, help="normalisation after each conv: batch (BatchNorm2d), layer (GroupNorm(1, C): one mean "
                           "and variance over all channels and positions, the usual layer norm for conv maps), "
                           "group (GroupNorm(model.norm_groups, C)), instance (InstanceNorm2d with a learned scale "
                           "and shift); null: model.batch_norm decides", choices=CONV_NORMS)


def batch_norm_field(default: bool, layer: str) -> Any:
    return spec(default, help=f"{layer} after each {'hidden linear layer' if layer == 'BatchNorm1d' else 'conv'}; "
                              "the older spelling of model.norm=batch, so true goes only with model.norm null or "
                              "batch")


def norm_groups_field() -> Any:
    return spec(None, help="groups of model.norm=group, dividing every conv's channels; null: per conv, the most "
                           "groups (up to 32) that keep at least 4 channels in each", ge=1)


def pool_field(what: str) -> Any:
    return spec("max", help=f"kind of {what}: max or avg (average)", choices=POOLS)


def strides_field(default: str) -> Any:
    return spec(None, help=f"stride of each conv, one per conv; null: {default}", each_ge=1)


def paddings_field(default: str) -> Any:
    return spec(None, help=f"zero padding of each conv, one per conv; null: {default}", each_ge=0)


def pool_size_field() -> Any:
    return spec(2, help="the pools' window and stride (2: halves the size)", ge=1)


def dropout2d_field() -> Any:
    return spec(0.0, help="Dropout2d after each conv's activation: drops whole channels (feature maps), which "
                          "suits conv features whose neighbouring pixels are alike", ge=0.0, lt=1.0)


def norm_conflict(model: DictConfig) -> str | None:
    """`model.batch_norm=true` is the older spelling of `model.norm=batch`: with another norm it is a
    contradiction, refused rather than resolved by a rule the user would have to remember."""
    norm = model.get("norm")
    if not model.get("batch_norm") or norm in (None, "batch"):
        return None
    schema = OmegaConf.get_type(model)
    by_default = dataclasses.is_dataclass(schema) and any(
        f.name == "batch_norm" and f.default is True for f in dataclasses.fields(schema))
    why = f" ({model.get('name')} turns it on by default)" if by_default else ""
    return (f"model.norm={norm} contradicts model.batch_norm=true{why}, which means norm=batch. Fix: set "
            f"model.batch_norm=false to use {norm} norm, or drop model.norm")


def chosen_norm(model: DictConfig) -> str:
    """The normalisation a model config asks for: `norm` when set, else batch when `batch_norm`, else none."""
    conflict = norm_conflict(model)
    if conflict is not None:
        raise UserError(conflict)
    norm = model.get("norm")
    return norm if norm is not None else ("batch" if model.get("batch_norm") else "none")


# Keys added after release 0.1 (issue 12), with the value that builds what configs without them built: a
# checkpoint's stored config compares (on resume) as if it held these. Each is its schema's default.
ADDED_KEYS = {"model.activation": "relu", "model.dropout": 0.0, "model.dropout2d": 0.0, "model.norm": None,
              "model.norm_groups": None, "model.pool": "max", "model.bias": True, "model.nonlinearity": "tanh",
              "model.hidden": [],  # cnn's (mlp has always had its own)
              "model.strides": None, "model.paddings": None, "model.pool_size": 2, "model.stateful": False,
              "model.init": None}


# ---- models -------------------------------------------------------------------------------------------------
@dataclass
class MLPConfig:
    name: str = "mlp"
    freeze: list[str] = freeze_field()
    init: Optional[str] = init_field()
    hidden: list[int] = spec([512, 512], help="hidden layer widths", each_ge=1)
    activation: str = activation_field("after each hidden layer")
    dropout: float = spec(0.0, help="dropout after each hidden layer", ge=0.0, lt=1.0)
    batch_norm: bool = batch_norm_field(False, "BatchNorm1d")
    norm: Optional[str] = norm_field(conv=False)


@dataclass
class CNNConfig:
    name: str = "cnn"
    freeze: list[str] = freeze_field()
    init: Optional[str] = init_field()
    channels: list[int] = spec([16, 32], help="output channels of the conv blocks, one block (conv, norm, "
                                              "activation, pool) per item; the first conv has stride 2 and the "
                                              "last block no pool", each_ge=1, min_items=1)
    kernel_size: int = spec(5, help="conv kernel size (odd keeps the spatial size)", ge=1)
    batch_norm: bool = batch_norm_field(False, "BatchNorm2d")
    activation: str = activation_field("after each conv")
    norm: Optional[str] = norm_field(conv=True)
    norm_groups: Optional[int] = norm_groups_field()
    pool: str = pool_field("the pool after each block but the last")
    pool_size: int = pool_size_field()
    strides: Optional[list[int]] = strides_field("2 for the first conv, 1 for the others")
    paddings: Optional[list[int]] = paddings_field("kernel_size // 2 (keeps the size at stride 1)")
    dropout2d: float = dropout2d_field()
    hidden: list[int] = spec([], help="widths of hidden linear layers (each with the activation) between the "
                                      "convs and the classifier; [] for none", each_ge=1)
    dropout: float = spec(0.0, help="dropout before each linear layer of the head", ge=0.0, lt=1.0)


VGG_PRESETS = {
    # VGG-11/13/16 layer patterns with halved widths and four pools, sized for 28x28 and 32x32 inputs.
    "vgg11": [32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256],
    "vgg13": [32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M", 256, 256],
    "vgg16": [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M", 256, 256, 256],
}


@dataclass
class VGGConfig:
    name: str = "vgg"
    freeze: list[str] = freeze_field()
    init: Optional[str] = init_field()
    preset: str = spec("vgg11", help="layer pattern used when `layers` is null", choices=list(VGG_PRESETS))
    layers: Optional[list[Any]] = spec(None, help="conv channels and 'M' (2x2 pool, see model.pool); overrides "
                                                  "preset")
    batch_norm: bool = batch_norm_field(True, "BatchNorm2d")
    dropout: float = spec(0.5, help="dropout in the classifier", ge=0.0, lt=1.0)
    hidden: int = spec(256, help="width of the classifier's hidden layer", ge=1)
    activation: str = activation_field("after each conv and in the classifier")
    norm: Optional[str] = norm_field(conv=True)
    norm_groups: Optional[int] = norm_groups_field()
    pool: str = pool_field("the 'M' pools")
    pool_size: int = pool_size_field()
    strides: Optional[list[int]] = strides_field("1 for every conv")
    paddings: Optional[list[int]] = paddings_field("1 for every (3x3) conv")
    dropout2d: float = dropout2d_field()


@dataclass
class ResNetConfig:
    name: str = "resnet"
    freeze: list[str] = freeze_field()
    init: Optional[str] = init_field()
    arch: str = spec("resnet18", help="torchvision ResNet", choices=["resnet18", "resnet34", "resnet50", "resnet101",
                                                                   "resnet152"])
    weights: Optional[str] = spec(None, help="pretrained weights, e.g. DEFAULT or IMAGENET1K_V1 (downloads)")
    small_input: bool = spec(True, help="3x3 stride-1 stem and no max-pool, for 28-32 px images")


@dataclass
class TorchvisionConfig:
    name: str = "torchvision"
    freeze: list[str] = freeze_field()
    init: Optional[str] = init_field()
    arch: str = spec("mobilenet_v3_small", help="any torchvision classification model name")
    weights: Optional[str] = spec(None, help="pretrained weights, e.g. DEFAULT (downloads)")


@dataclass
class RNNConfig:
    """lstm and gru; `ElmanRNNConfig` adds the plain RNN's nonlinearity."""

    name: str = "lstm"
    freeze: list[str] = freeze_field()
    init: Optional[str] = init_field()
    hidden_size: int = spec(128, help="hidden units per direction", ge=1)
    num_layers: int = spec(1, help="stacked recurrent layers", ge=1)
    bidirectional: bool = spec(False, help="read sequences both ways")
    dropout: float = spec(0.0, help="dropout between stacked layers", ge=0.0, lt=1.0)
    bias: bool = spec(True, help="bias terms (b_ih, b_hh) in the recurrent layers; the output layer keeps its own")
    stateful: bool = spec(False, help="carry the hidden state from one training batch to the next, detached (needs "
                                      "ordered data: dataset=sine dataset.streams=N, trainer.batch_size=N)")


@dataclass
class ElmanRNNConfig(RNNConfig):
    name: str = "rnn"
    nonlinearity: str = spec("tanh", help="the recurrent layers' activation", choices=["tanh", "relu"])


@dataclass
class LeNetConfig:
    name: str = "lenet"
    freeze: list[str] = freeze_field()
    init: Optional[str] = init_field()
    activation: str = activation_field("after conv and fc layers")
    batch_norm: bool = batch_norm_field(False, "BatchNorm2d")
    norm: Optional[str] = norm_field(conv=True)
    norm_groups: Optional[int] = norm_groups_field()
    pool: str = pool_field("the two pools")
    pool_size: int = pool_size_field()
    strides: Optional[list[int]] = strides_field("[1, 1]")
    paddings: Optional[list[int]] = paddings_field("[2, 0] (the first turns 28x28 into LeNet's 32x32 field)")
    dropout2d: float = dropout2d_field()
    dropout: float = spec(0.0, help="dropout after each hidden fc layer (120 and 84 wide)", ge=0.0, lt=1.0)


@dataclass
class Conv1DConfig:
    """A 1-D convnet over sequences (T, F) or images read row by row: convs along time."""

    name: str = "cnn1d"
    freeze: list[str] = freeze_field()
    init: Optional[str] = init_field()
    channels: list[int] = spec([32, 32], help="output channels of the Conv1d layers, one per item (each with the "
                                              "activation)", each_ge=1, min_items=1)
    kernel_size: int = spec(5, help="kernel size along time (odd keeps the length)", ge=1)
    activation: str = activation_field("after each conv")
    dropout: float = spec(0.0, help="dropout after each conv's activation", ge=0.0, lt=1.0)
