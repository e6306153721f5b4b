"""Loss builders: `build_loss(cfg, spec) -> nn.Module` taking (model output, target)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from trainctl.config.targets import has_target, instantiate_target
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.registry import Registry

LOSSES: Registry = Registry("loss")
CLASSIFICATION_ONLY = ("cross_entropy", "nll", "focal")


def _class_weights(cfg: DictConfig, spec: DataSpec) -> torch.Tensor | None:
    if cfg.get("weight") is None:
        return None
    if len(cfg.weight) != spec.num_classes:
        raise UserError(
            f"loss.weight has {len(cfg.weight)} values but the dataset has {spec.num_classes} classes: "
            f"give one weight per class, e.g. loss.weight=[{','.join(['1.0'] * spec.num_classes)}]"
        )
    if not any(w > 0 for w in cfg.weight):
        raise UserError(f"loss.weight={list(cfg.weight)} gives every class weight 0, so the mean loss is 0/0 (NaN): "
                        "give at least one class a positive weight")
    return torch.tensor(list(cfg.weight), dtype=torch.float32)


def _as_target_like(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class labels become one-hot rows shaped like the output; real-valued targets pass through."""
    if target.dtype == torch.long and output.dim() == target.dim() + 1:
        return F.one_hot(target, output.shape[-1]).to(output.dtype)
    return target


@LOSSES.register("cross_entropy")
def build_cross_entropy(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Cross entropy on logits, with optional class weights and label smoothing."""
    return nn.CrossEntropyLoss(weight=_class_weights(cfg, spec), label_smoothing=cfg.label_smoothing)


class LogSoftmaxNLL(nn.Module):
    """NLL on log-softmax outputs: what a model ending in LogSoftmax trains with (equals cross entropy)."""

    def __init__(self, weight: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(F.log_softmax(output, dim=-1), target, weight=self.weight)


@LOSSES.register("nll")
def build_nll(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Negative log-likelihood; the model's output goes through log-softmax first."""
    return LogSoftmaxNLL(_class_weights(cfg, spec))


class FocalLoss(nn.Module):
    """-alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017); gamma=0 and no alpha is cross entropy."""

    def __init__(self, gamma: float, alpha: float | None) -> None:
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(output, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.alpha is not None:
            loss = self.alpha * loss
        return loss.mean()


@LOSSES.register("focal")
def build_focal(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Focal loss (Lin et al.): cross entropy down-weighting easy examples by (1 - p)^gamma."""
    return FocalLoss(cfg.gamma, cfg.alpha)


class OneHotMSELoss(nn.Module):
    """MSE between the softmax of the logits and one-hot targets; plain MSE when targets are real-valued."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dtype == torch.long:
            return F.mse_loss(output.softmax(dim=-1), _as_target_like(output, target))
        return F.mse_loss(output, target)


@LOSSES.register("mse")
def build_mse(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Mean squared error (class labels one-hot encoded against the softmax output)."""
    return OneHotMSELoss()


class TargetLikeLoss(nn.Module):
    """Wraps a regression loss so class labels are one-hot encoded first."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(output, _as_target_like(output, target))


@LOSSES.register("l1")
def build_l1(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Mean absolute error."""
    return TargetLikeLoss(nn.L1Loss())


@LOSSES.register("smooth_l1")
def build_smooth_l1(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Smooth L1 (Huber-like): quadratic below beta, linear above."""
    return TargetLikeLoss(nn.SmoothL1Loss(beta=cfg.beta))


@LOSSES.register("bce_with_logits")
def build_bce_with_logits(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Binary cross entropy on logits (class labels one-hot encoded)."""
    pos_weight = torch.tensor(cfg.pos_weight) if cfg.pos_weight is not None else None
    return TargetLikeLoss(nn.BCEWithLogitsLoss(pos_weight=pos_weight))


def build_loss(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    if has_target(cfg):
        return instantiate_target(cfg)
    if spec.task == "regression" and cfg.name in CLASSIFICATION_ONLY:
        raise UserError(f"loss '{cfg.name}' needs class labels but the dataset is a regression task: "
                        "use loss=mse, l1 or smooth_l1")
    return LOSSES.get(cfg.name)(cfg, spec)
