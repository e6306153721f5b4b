"""Image models: our convnets (cnn, lenet, VGG from a layer list), torchvision's ResNets adapted to small images,
any torchvision model."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainctl.config.schemas import VGG_PRESETS
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.components.layers import ConvStyle, activation, dropout, per_conv
from trainctl.components.models import MODELS, check_input_size, check_norm_positions, flat_size, need_image
from trainctl.components.naming import named_sequential


@MODELS.register("cnn")
def build_cnn(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Small convnet: a block (conv, norm, activation, pool) per model.channels item, the first conv with stride 2
    and no pool after the last; then model.hidden linear layers and a linear layer to the classes. Default:
    conv1 16@5x5/2, relu1, pool1 (max 2); conv2 32@5x5, relu2; flatten, fc."""
    need_image("cnn", spec)
    channels = list(cfg.channels)
    if not channels:
        raise UserError("model.channels=[] has no conv block: give at least one channel count, e.g. "
                        "model.channels=[16,32]")
    style = ConvStyle.of(cfg, "cnn", channels)
    k, blocks = cfg.kernel_size, "one per model.channels item"
    strides = per_conv(cfg, "strides", [2] + [1] * (len(channels) - 1), "cnn", blocks)
    paddings = per_conv(cfg, "paddings", [k // 2] * len(channels), "cnn", blocks)
    features: list[nn.Module] = []
    inputs = spec.input_shape[0]
    for index, count in enumerate(channels):
        features += style.block(nn.Conv2d(inputs, count, k, stride=strides[index], padding=paddings[index]))
        if index < len(channels) - 1:
            features.append(style.pooling())
        inputs = count
    features.append(nn.Flatten())
    named = named_sequential(features)  # the names error messages give (the whole model's begin the same way)
    fewer = "lower model.kernel_size or give model.channels fewer items (each block but the last halves the size)"
    check_input_size("cnn", named, spec.input_shape, fewer, kernel_key="model.kernel_size")
    check_norm_positions("cnn", named, spec.input_shape)
    width = flat_size(named, spec.input_shape)
    head: list[nn.Module] = []
    for hidden in cfg.hidden:
        head += [*dropout(cfg.dropout), nn.Linear(width, hidden), activation(cfg.activation)]
        width = hidden
    return named_sequential([*features, *head, *dropout(cfg.dropout), nn.Linear(width, spec.num_classes)])


@MODELS.register("lenet")
def build_lenet(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """LeNet-5: conv1 6@5x5, relu1, pool1, conv2 16@5x5, relu2, pool2, flatten, fc1 120, relu3, fc2 84, relu4,
    fc (the classes)."""
    need_image("lenet", spec)
    style = ConvStyle.of(cfg, "lenet", [6, 16])
    # Padding 2 on the first conv turns 28x28 digits into LeNet's original 32x32 receptive field.
    strides = per_conv(cfg, "strides", [1, 1], "lenet", "conv 6@5x5, conv 16@5x5")
    paddings = per_conv(cfg, "paddings", [2, 0], "lenet", "conv 6@5x5, conv 16@5x5")
    features = [
        *style.block(nn.Conv2d(spec.input_shape[0], 6, 5, stride=strides[0], padding=paddings[0])), style.pooling(),
        *style.block(nn.Conv2d(6, 16, 5, stride=strides[1], padding=paddings[1])), style.pooling(),
        nn.Flatten(),
    ]
    named = named_sequential(features)
    check_input_size("lenet", named, spec.input_shape, "use a model for small images (model=resnet takes any size)")
    check_norm_positions("lenet", named, spec.input_shape)
    flat = flat_size(named, spec.input_shape)
    head = [nn.Linear(flat, 120), activation(cfg.activation), *dropout(cfg.dropout),
            nn.Linear(120, 84), activation(cfg.activation), *dropout(cfg.dropout),
            nn.Linear(84, spec.num_classes)]
    return named_sequential([*features, *head])


@MODELS.register("vgg")
def build_vgg(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """VGG-style convnet from a layer list (numbers: 3x3 conv channels, M: 2x2 pool); presets vgg11/13/16.
    Layers conv1, bn1, relu1, pool1, ..., then `head`: avgpool, flatten, fc1, relu1, dropout1, fc."""
    need_image("vgg", spec)
    layers = OmegaConf.to_container(cfg.layers) if cfg.layers is not None else VGG_PRESETS[cfg.preset]
    for item in layers:
        if str(item).upper() != "M" and (not isinstance(item, int) or isinstance(item, bool) or item < 1):
            raise UserError(f"model.layers item {item!r} is neither a channel count nor 'M'")
    convs = [item for item in layers if str(item).upper() != "M"]
    if not convs:
        raise UserError(f"model.layers={layers} has no conv layer: give at least one channel count, "
                        "e.g. model.layers=[32,M,64,M], or set model.layers=null to use model.preset")
    style = ConvStyle.of(cfg, "vgg", convs, inplace=True)
    strides = per_conv(cfg, "strides", [1] * len(convs), "vgg", "the numbers in its layer list")
    paddings = per_conv(cfg, "paddings", [1] * len(convs), "vgg", "the numbers in its layer list")
    features: list[nn.Module] = []
    channels, conv = spec.input_shape[0], 0
    for item in layers:
        if str(item).upper() == "M":
            features.append(style.pooling())
        else:
            features += style.block(nn.Conv2d(channels, item, 3, stride=strides[conv], padding=paddings[conv]))
            channels, conv = item, conv + 1
    fewer_pools = ("remove some 'M' pools from model.layers" if cfg.layers is not None else
                   f"give model.layers with fewer 'M' pools than preset {cfg.preset}'s")
    named = named_sequential(features)
    check_input_size("vgg", named, spec.input_shape, fewer_pools)
    check_norm_positions("vgg", named, spec.input_shape)
    head = named_sequential([
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, cfg.hidden), activation(cfg.activation, True),
        nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, spec.num_classes),
    ])
    return named_sequential([*features, ("head", head)])


def _torchvision_model(arch: str, weights: str | None, num_classes: int) -> nn.Module:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)  # the image classifiers
    if arch not in names:
        for kind in ("detection", "segmentation", "video", "optical_flow", "quantization"):
            module = getattr(torchvision.models, kind, None)
            if module is not None and arch in torchvision.models.list_models(module=module):
                raise UserError(f"torchvision model '{arch}' is a {kind.replace('_', ' ')} model, not an image "
                                "classifier: set model.arch to a classifier, e.g. resnet18 or mobilenet_v3_small")
        from trainctl.registry import did_you_mean

        raise UserError(f"model.arch={arch}: unknown torchvision model{did_you_mean(arch, names)} (any "
                        "classifier of torchvision.models.list_models(); `trainctl list model torchvision`)")
    builder = torchvision.models.get_model_builder(arch)
    if weights is None:
        return builder(num_classes=num_classes)
    check_weights(arch, weights)
    try:
        model = builder(weights=weights)
    except Exception as e:  # bad weight names and failed downloads come in many types; the message matters
        raise UserError(
            f"cannot load pretrained weights '{weights}' for {arch}: {e}. Pretrained weights are downloaded on first "
            "use (into ~/.cache/torch); on an offline machine copy them there, or set model.weights=null."
        ) from None
    return _replace_classifier(model, num_classes)


def check_weights(arch: str, weights: str) -> None:
    """`model.weights` must name one of the architecture's pretrained weights (torchvision's enum, read without
    a download), so a typo is named before anything is fetched, and by `trainctl summary` too."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch)
    except Exception:  # an architecture torchvision has no weights table for: its builder will say
        return
    try:
        enum.verify(weights)
    except (KeyError, ValueError, TypeError):
        from trainctl.registry import did_you_mean

        names = list(enum.__members__)
        raise UserError(f"model.weights={weights} names no pretrained weights of {arch}"
                        f"{did_you_mean(str(weights), names)}: use one of {', '.join(names)} (DEFAULT is the best), "
                        "or model.weights=null to start from random weights") from None


def _replace_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the last Linear layer for one with `num_classes` outputs (pretrained models have 1000)."""
    for parent in reversed(list(model.modules())):
        for name, child in reversed(list(parent.named_children())):
            if isinstance(child, nn.Linear):
                if child.out_features != num_classes:
                    setattr(parent, name, nn.Linear(child.in_features, num_classes))
                return model
    return model


@MODELS.register("resnet")
def build_resnet(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """torchvision ResNet by name, adapted to any channel count and small images; classes from the dataset."""
    need_image("resnet", spec)
    model = _torchvision_model(cfg.arch, cfg.weights, spec.num_classes)
    in_channels = spec.input_shape[0]
    if cfg.small_input:
        # A 7x7 stride-2 stem and a max-pool would shrink a 28px image to 7px before the first block.
        model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return model


class RepeatChannels(nn.Module):
    """Grey images to the 3 channels torchvision models expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


@MODELS.register("torchvision")
def build_torchvision(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Any torchvision classification model by name (grey inputs repeated to 3 channels: then the model is
    `net` behind a `to_rgb` layer)."""
    need_image("torchvision", spec)
    model = _torchvision_model(cfg.arch, cfg.weights, spec.num_classes)
    if spec.input_shape[0] == 1:
        model = named_sequential([("to_rgb", RepeatChannels()), ("net", model)])
    elif spec.input_shape[0] != 3:
        raise UserError(f"model=torchvision needs 1- or 3-channel images, not {spec.input_shape[0]} channels")
    with torch.no_grad():
        try:
            flat_size(model.eval(), spec.input_shape)
        except NotImplementedError:
            raise  # an op with no kernel for the meta device, on which the model is sized first
        except Exception as e:  # models refuse sizes with RuntimeErrors, AssertionErrors, ValueErrors...
            raise UserError(f"torchvision model '{cfg.arch}' cannot take {spec.input_shape} inputs ({e}); "
                            "choose a larger dataset.image_size or another arch") from None
    return model.train()
