"""`model=cnn1d`: a 1-D convnet over sequences, so `dataset=sine` (and any (T, F) data) can use convolutions
along time as the tutorials' Conv1d examples do. Images are read row by row, as the recurrent models read them.

Inputs [N, T, F] become [N, F, T] for `nn.Conv1d`; each conv keeps the length (padding kernel_size // 2, odd
kernels). Regression maps every time step to the target's features with a 1x1 conv; classification averages
over time and ends in a linear layer.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.components.layers import activation, dropout
from trainctl.components.models import MODELS
from trainctl.components.naming import named_sequential
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError


class Conv1DNet(nn.Module):
    def __init__(self, cfg: DictConfig, spec: DataSpec) -> None:
        super().__init__()
        shape = spec.input_shape
        inputs = shape[0] * shape[2] if len(shape) == 3 else shape[-1]
        self.classify = spec.task == "classification"
        layers: list[nn.Module] = []
        for count in cfg.channels:
            layers += [nn.Conv1d(inputs, count, cfg.kernel_size, padding=cfg.kernel_size // 2),
                       activation(cfg.activation), *dropout(cfg.dropout)]
            inputs = count
        self.features = named_sequential(layers)  # conv1, relu1, (dropout1,) conv2, ...
        if self.classify:  # avgpool, flatten, fc
            self.head: nn.Module = named_sequential([nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                                                     nn.Linear(inputs, spec.num_classes)])
        else:
            self.head = nn.Conv1d(inputs, spec.target_shape[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # [N, C, H, W] → [N, H, C·W]: rows as time steps
            x = x.permute(0, 2, 1, 3).flatten(2)
        out = self.head(self.features(x.transpose(1, 2)))
        return out if self.classify else out.transpose(1, 2)  # [N, T, target features]


@MODELS.register("cnn1d")
def build_cnn1d(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """1-D convnet along time: maps sequences to sequences (regression) or classifies them (and image rows)."""
    if len(spec.input_shape) not in (2, 3):
        raise UserError(f"model 'cnn1d' needs sequences (T, F) or images (C, H, W), not {spec.input_shape}")
    if cfg.kernel_size % 2 == 0:
        raise UserError(f"model.kernel_size={cfg.kernel_size} is even: cnn1d keeps each sequence's length, which "
                        "needs an odd kernel (e.g. model.kernel_size=5)")
    if spec.task != "classification" and len(spec.target_shape) != 2:
        raise UserError(f"model 'cnn1d' maps each time step to a target, but the targets are shaped "
                        f"{spec.target_shape}, not (T, F): use model=mlp")
    return Conv1DNet(cfg, spec)
