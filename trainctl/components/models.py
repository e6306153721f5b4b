"""Model builders: `build_model(cfg, spec) -> nn.Module`. Input shape and class count come from the data spec."""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.components.targets import has_target, instantiate_target
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.registry import Registry

MODELS: Registry = Registry("model")

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


def flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Size of `features`' output for one sample, found by a dry run (no hand-computed conv arithmetic)."""
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def need_image(name: str, spec: DataSpec) -> None:
    if len(spec.input_shape) != 3:
        raise UserError(
            f"model '{name}' needs images (C, H, W) but the dataset gives inputs of shape {spec.input_shape}: "
            "use model=mlp for non-image data"
        )


@MODELS.register("mlp")
def build_mlp(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Fully connected net on flattened inputs (default: the PyTorch quickstart's 784-512-512-10, ReLU)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(spec.input_shape)
    for hidden in cfg.hidden:
        layers.append(nn.Linear(width, hidden))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(ACTIVATIONS[cfg.activation]())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = hidden
    if spec.task == "regression":  # predict the whole target, shaped like it
        layers += [nn.Linear(width, math.prod(spec.target_shape)), nn.Unflatten(1, spec.target_shape)]
    else:
        layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


@MODELS.register("cnn")
def build_cnn(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Small convnet: conv 16@5x5 stride 2, ReLU, max-pool 2; conv 32@5x5, ReLU; linear to the classes."""
    need_image("cnn", spec)
    c1, c2 = cfg.channels
    k, pad = cfg.kernel_size, cfg.kernel_size // 2
    norm = (lambda c: [nn.BatchNorm2d(c)]) if cfg.batch_norm else (lambda c: [])
    features = nn.Sequential(
        nn.Conv2d(spec.input_shape[0], c1, k, stride=2, padding=pad),
        *norm(c1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, k, padding=pad),
        *norm(c2),
        nn.ReLU(),
        nn.Flatten(),
    )
    return nn.Sequential(*features, nn.Linear(flat_size(features, spec.input_shape), spec.num_classes))


@MODELS.register("lenet")
def build_lenet(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """LeNet-5: conv 6@5x5, pool, conv 16@5x5, pool, fc 120, fc 84, fc classes."""
    need_image("lenet", spec)
    act = ACTIVATIONS[cfg.activation]
    # Padding 2 on the first conv turns 28x28 digits into LeNet's original 32x32 receptive field.
    norm = (lambda c: [nn.BatchNorm2d(c)]) if cfg.batch_norm else (lambda c: [])
    features = nn.Sequential(
        nn.Conv2d(spec.input_shape[0], 6, 5, padding=2),
        *norm(6),
        act(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        *norm(16),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    flat = flat_size(features, spec.input_shape)
    head = [nn.Linear(flat, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, spec.num_classes)]
    return nn.Sequential(*features, *head)


def build_model(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    if has_target(cfg):
        model = instantiate_target(cfg, input_shape=spec.input_shape, num_classes=spec.num_classes, spec=spec)
        if not isinstance(model, nn.Module):
            raise UserError(f"model._target_ {cfg._target_} built a {type(model).__name__}, not a torch.nn.Module")
        return model
    if spec.task == "regression" and cfg.name in CLASSIFIERS:
        raise UserError(f"model '{cfg.name}' is a classifier but the dataset is a regression task: "
                        "use model=mlp, rnn, lstm or gru")
    return MODELS.get(cfg.name)(cfg, spec)


CLASSIFIERS = ("cnn", "lenet", "vgg", "resnet", "torchvision")
