"""The layers the built-in models choose by config name: activations, normalisation, pooling, and what follows
each conv in cnn, lenet and vgg (one `ConvStyle`, so the three apply the same keys the same way)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from omegaconf import DictConfig
from torch import nn

from trainctl.config.schemas.models import chosen_norm
from trainctl.errors import UserError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU,
}
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
MAX_GROUPS, MIN_GROUP_CHANNELS = 32, 4  # GroupNorm's usual 32 groups, fewer where a group would be too thin


def activation(name: str, inplace: bool = False) -> nn.Module:
    """`inplace` applies to ReLU only (vgg's has always been in place, saving a copy); the others keep their
    input, which some of their backward passes read."""
    return nn.ReLU(inplace=True) if inplace and name == "relu" else ACTIVATIONS[name]()


def dropout(p: float, layer: type[nn.Module] = nn.Dropout) -> list[nn.Module]:
    """A dropout layer, or none at p=0: default configs keep the module tree (and state_dict indices) they had."""
    return [layer(p)] if p > 0 else []


def linear_norm(kind: str, width: int) -> list[nn.Module]:
    """The mlp's normalisation after a hidden linear layer."""
    return {"none": [], "batch": [nn.BatchNorm1d(width)], "layer": [nn.LayerNorm(width)]}[kind]


def auto_groups(channels: int) -> int:
    """The most groups, up to 32, that divide `channels` and keep at least 4 channels in each (1 when none do)."""
    return max((g for g in range(1, MAX_GROUPS + 1) if channels % g == 0 and channels // g >= MIN_GROUP_CHANNELS),
               default=1)


def check_groups(groups: int | None, channels: Sequence[int], model: str) -> None:
    """Refuse a `model.norm_groups` that some conv's channel count does not split into equal groups."""
    if groups is None:
        return
    for index, count in enumerate(channels, 1):
        if count % groups:
            common = math.gcd(*channels)
            raise UserError(f"model.norm_groups={groups} does not divide the {count} channels of {model}'s conv "
                            f"{index}: give a divisor of every conv's channel count ({', '.join(map(str, channels))}),"
                            f" e.g. model.norm_groups={common}, or model.norm_groups=null to let each conv choose")


@dataclass(frozen=True)
class ConvStyle:
    """What follows each conv of a built-in convnet (norm, activation, channel dropout) and its pools, read once
    from the model config."""

    norm: str
    groups: int | None
    activation: str
    dropout2d: float
    pool: str
    inplace: bool = False
    pool_size: int = 2

    @classmethod
    def of(cls, cfg: DictConfig, model: str, channels: Sequence[int], inplace: bool = False) -> ConvStyle:
        """The style `cfg` asks for; `channels` are every conv's output channels, for the group check."""
        style = cls(chosen_norm(cfg), cfg.norm_groups, cfg.activation, cfg.dropout2d, cfg.pool, inplace,
                    cfg.get("pool_size", 2))
        if style.norm == "group":
            check_groups(style.groups, channels, model)
        return style

    def norm_layers(self, channels: int) -> list[nn.Module]:
        if self.norm == "none":
            return []
        if self.norm == "batch":
            return [nn.BatchNorm2d(channels)]
        if self.norm == "instance":  # affine, so it learns a scale and shift like the other norms
            return [nn.InstanceNorm2d(channels, affine=True)]
        groups = 1 if self.norm == "layer" else self.groups or auto_groups(channels)
        return [nn.GroupNorm(groups, channels)]

    def block(self, conv: nn.Conv2d) -> list[nn.Module]:
        """conv, norm, activation, Dropout2d. Channel dropout before the pool equals dropout after it (a dropped
        map pools to zero either way), so every model puts it here."""
        return [conv, *self.norm_layers(conv.out_channels), activation(self.activation, self.inplace),
                *dropout(self.dropout2d, nn.Dropout2d)]

    def pooling(self) -> nn.Module:
        return POOLS[self.pool](self.pool_size)


def per_conv(cfg: DictConfig, key: str, default: list[int], model: str, convs: str) -> list[int]:
    """`model.strides` or `model.paddings`: one value per conv, or the model's own when null."""
    given = cfg.get(key)
    if given is None:
        return default
    values = [int(v) for v in given]
    if len(values) != len(default):
        raise UserError(f"model.{key}={values} has {len(values)} item(s), but {model} has {len(default)} conv "
                        f"layer(s) ({convs}): give one per conv, e.g. model.{key}={default}, or null for the default")
    return values
