"""Loss builders: `build_loss(cfg, spec, train_labels) -> nn.Module` taking (model output, target).

Every loss built here has a `reduction` attribute (mean or sum, as torch's losses do): the loop reads it to keep
the logged loss per sample (`reduces_by_sum`).
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from trainctl.components.class_weights import class_weights, per_class, with_balanced_weights
from trainctl.config.targets import has_target, instantiate_target
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.registry import Registry

LOSSES: Registry = Registry("loss")
CLASSIFICATION_ONLY = ("cross_entropy", "nll", "focal")


def _as_target_like(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class labels become one-hot rows shaped like the output; real-valued targets pass through."""
    if target.dtype == torch.long and output.dim() == target.dim() + 1:
        return F.one_hot(target, output.shape[-1]).to(output.dtype)
    return target


@LOSSES.register("cross_entropy")
def build_cross_entropy(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Cross entropy on logits, with optional class weights and label smoothing."""
    return nn.CrossEntropyLoss(weight=class_weights(cfg, spec), label_smoothing=cfg.label_smoothing,
                               reduction=cfg.reduction)


class LogSoftmaxNLL(nn.Module):
    """NLL on log-softmax outputs: what a model ending in LogSoftmax trains with (equals cross entropy)."""

    def __init__(self, weight: torch.Tensor | None, reduction: str = "mean") -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = reduction

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(F.log_softmax(output, dim=-1), target, weight=self.weight, reduction=self.reduction)


@LOSSES.register("nll")
def build_nll(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Negative log-likelihood; the model's output goes through log-softmax first."""
    return LogSoftmaxNLL(class_weights(cfg, spec), cfg.reduction)


class FocalLoss(nn.Module):
    """-alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017); gamma=0 and no alpha is cross entropy.

    `alpha` is one number for every class or a tensor of one per class (alpha_t = alpha[target]). With `mean`
    the weighted terms are averaged over the samples (not divided by the weights' sum as cross entropy's
    `weight` is), as in the paper."""

    def __init__(self, gamma: float, alpha: float | torch.Tensor | None, reduction: str = "mean") -> None:
        super().__init__()
        self.gamma, self.reduction = gamma, reduction
        self.per_class = isinstance(alpha, torch.Tensor)
        if self.per_class:
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = alpha

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(output, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.alpha is not None:
            loss = (self.alpha[target] if self.per_class else self.alpha) * loss
        return loss.sum() if self.reduction == "sum" else loss.mean()


@LOSSES.register("focal")
def build_focal(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Focal loss (Lin et al.): cross entropy down-weighting easy examples by (1 - p)^gamma."""
    alpha = cfg.alpha
    if alpha is not None and not isinstance(alpha, (int, float)):
        alpha = per_class("loss.alpha", alpha, spec, "the loss is always 0")
    return FocalLoss(cfg.gamma, alpha, cfg.reduction)


class OneHotMSELoss(nn.Module):
    """MSE between the softmax of the logits and one-hot targets; plain MSE when targets are real-valued."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dtype == torch.long:
            return F.mse_loss(output.softmax(dim=-1), _as_target_like(output, target), reduction=self.reduction)
        return F.mse_loss(output, target, reduction=self.reduction)


@LOSSES.register("mse")
def build_mse(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Mean squared error (class labels one-hot encoded against the softmax output)."""
    return OneHotMSELoss(cfg.reduction)


class TargetLikeLoss(nn.Module):
    """Wraps a regression loss so class labels are one-hot encoded first."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    @property
    def reduction(self) -> str:
        return self.loss.reduction

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(output, _as_target_like(output, target))


@LOSSES.register("l1")
def build_l1(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Mean absolute error."""
    return TargetLikeLoss(nn.L1Loss(reduction=cfg.reduction))


@LOSSES.register("smooth_l1")
def build_smooth_l1(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Smooth L1 (Huber-like): quadratic below beta, linear above."""
    return TargetLikeLoss(nn.SmoothL1Loss(beta=cfg.beta, reduction=cfg.reduction))


@LOSSES.register("bce_with_logits")
def build_bce_with_logits(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Binary cross entropy on logits (class labels one-hot encoded)."""
    pos_weight = torch.tensor(cfg.pos_weight) if cfg.pos_weight is not None else None
    return TargetLikeLoss(nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction=cfg.reduction))


def reduces_by_sum(loss_fn: nn.Module) -> bool:
    """Whether `loss_fn` sums over the batch rather than averaging (`reduction="sum"`, ours or torch's)."""
    return getattr(loss_fn, "reduction", "mean") == "sum"


def build_loss(cfg: DictConfig, spec: DataSpec, train_labels: torch.Tensor | None = None) -> nn.Module:
    """The loss `cfg` names; `train_labels` (the training split's, on its device) are counted for
    `loss.weight=balanced` only, once, here."""
    if has_target(cfg):
        return instantiate_target(cfg)
    if spec.task == "regression" and cfg.name in CLASSIFICATION_ONLY:
        raise UserError(f"loss '{cfg.name}' needs class labels but the dataset is a regression task: "
                        "use loss=mse, l1 or smooth_l1")
    return LOSSES.get(cfg.name)(with_balanced_weights(cfg, spec, train_labels), spec)
