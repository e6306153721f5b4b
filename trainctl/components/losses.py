"""Loss builders: `build_loss(cfg, spec) -> nn.Module` taking (model output, target)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from trainctl.data import DataSpec
from trainctl.errors import UserError
from trainctl.registry import Registry

LOSSES: Registry = Registry("loss")


@LOSSES.register("cross_entropy")
def build_cross_entropy(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Cross entropy on logits, with optional class weights and label smoothing."""
    weight = None
    if cfg.weight is not None:
        if len(cfg.weight) != spec.num_classes:
            raise UserError(
                f"loss.weight has {len(cfg.weight)} values but the dataset has {spec.num_classes} classes: "
                f"give one weight per class, e.g. loss.weight=[{','.join(['1.0'] * spec.num_classes)}]"
            )
        weight = torch.tensor(list(cfg.weight), dtype=torch.float32)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


class OneHotMSELoss(nn.Module):
    """MSE between the softmax of the logits and one-hot targets; plain MSE when targets are already real-valued."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dtype == torch.long and output.dim() == target.dim() + 1:
            return F.mse_loss(output.softmax(dim=-1), F.one_hot(target, output.shape[-1]).to(output.dtype))
        return F.mse_loss(output, target)


@LOSSES.register("mse")
def build_mse(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Mean squared error (class labels one-hot encoded against the softmax output)."""
    return OneHotMSELoss()


def build_loss(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    return LOSSES.get(cfg.name)(cfg, spec)
