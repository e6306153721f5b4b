"""Schemas of the `model` group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from trainctl.config.schemas.fields import spec


# ---- models -------------------------------------------------------------------------------------------------
def freeze_field() -> Any:
    """`model.freeze`, a key of every model (the schemas share no base class); `trainctl.engine.finetune`
    applies it."""
    return spec([], help="module-name prefixes whose parameters are not trained, e.g. [layer1,layer2] or [0,3]")


ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu"]


@dataclass
class MLPConfig:
    name: str = "mlp"
    freeze: list[str] = freeze_field()
    hidden: list[int] = spec([512, 512], help="hidden layer widths", each_ge=1)
    activation: str = spec("relu", help="activation between layers", choices=ACTIVATIONS)
    dropout: float = spec(0.0, help="dropout after each hidden layer", ge=0.0, lt=1.0)
    batch_norm: bool = spec(False, help="BatchNorm1d after each hidden linear layer")


@dataclass
class CNNConfig:
    name: str = "cnn"
    freeze: list[str] = freeze_field()
    channels: list[int] = spec([16, 32], help="output channels of the two conv layers", each_ge=1, length=2)
    kernel_size: int = spec(5, help="conv kernel size (odd keeps the spatial size)", ge=1)
    batch_norm: bool = spec(False, help="BatchNorm2d after each conv (faster convergence on short runs)")


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
    preset: str = spec("vgg11", help="layer pattern used when `layers` is null", choices=list(VGG_PRESETS))
    layers: Optional[list[Any]] = spec(None, help="conv channels and 'M' (2x2 max-pool); overrides preset")
    batch_norm: bool = spec(True, help="BatchNorm2d after each conv")
    dropout: float = spec(0.5, help="dropout in the classifier", ge=0.0, lt=1.0)
    hidden: int = spec(256, help="width of the classifier's hidden layer", ge=1)


@dataclass
class ResNetConfig:
    name: str = "resnet"
    freeze: list[str] = freeze_field()
    arch: str = spec("resnet18", help="torchvision ResNet", choices=["resnet18", "resnet34", "resnet50", "resnet101",
                                                                   "resnet152"])
    weights: Optional[str] = spec(None, help="pretrained weights, e.g. DEFAULT or IMAGENET1K_V1 (downloads)")
    small_input: bool = spec(True, help="3x3 stride-1 stem and no max-pool, for 28-32 px images")


@dataclass
class TorchvisionConfig:
    name: str = "torchvision"
    freeze: list[str] = freeze_field()
    arch: str = spec("mobilenet_v3_small", help="any torchvision classification model name")
    weights: Optional[str] = spec(None, help="pretrained weights, e.g. DEFAULT (downloads)")


@dataclass
class RNNConfig:
    name: str = "lstm"
    freeze: list[str] = freeze_field()
    hidden_size: int = spec(128, help="hidden units per direction", ge=1)
    num_layers: int = spec(1, help="stacked recurrent layers", ge=1)
    bidirectional: bool = spec(False, help="read sequences both ways")
    dropout: float = spec(0.0, help="dropout between stacked layers", ge=0.0, lt=1.0)


@dataclass
class LeNetConfig:
    name: str = "lenet"
    freeze: list[str] = freeze_field()
    activation: str = spec("relu", help="activation after conv and fc layers", choices=ACTIVATIONS)
    batch_norm: bool = spec(False, help="BatchNorm2d after each conv")
