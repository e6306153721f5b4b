"""Schemas of the `loss` group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from trainctl.config.schemas.fields import spec


def _reduction() -> Any:
    # The logged train/val loss stays a per-sample figure either way: the loop divides a summed loss by the batch.
    return spec("mean", help="how a batch's per-sample losses combine into the one optimised: mean, or sum (the "
                             "gradient then grows with the batch size; elementwise losses sum every element)",
                choices=["mean", "sum"])


def _class_weight() -> Any:
    return spec(None, help="per-class weights (one per class), or balanced: n_samples / (n_classes × count) from "
                           "the training split's labels (scikit-learn's convention; a class with no training sample "
                           "is an error)", each_ge=0.0, forms=["numbers", "balanced"])


# ---- losses -------------------------------------------------------------------------------------------------
@dataclass
class CrossEntropyConfig:
    name: str = "cross_entropy"
    weight: Any = _class_weight()
    label_smoothing: float = spec(0.0, help="label smoothing", ge=0.0, le=1.0)
    reduction: str = _reduction()


@dataclass
class NLLConfig:
    name: str = "nll"
    weight: Any = _class_weight()
    reduction: str = _reduction()


@dataclass
class FocalConfig:
    name: str = "focal"
    gamma: float = spec(2.0, help="focusing parameter (0: cross entropy)", ge=0.0)
    alpha: Any = spec(None, help="per-class weights alpha_t (a list, one per class), or one number for every class "
                                 "(on this softmax loss a number only rescales the loss, like a smaller lr); null: "
                                 "none", ge=0.0, le=1.0, each_ge=0.0, forms=["number", "numbers"])
    reduction: str = _reduction()


@dataclass
class MSEConfig:
    """Mean squared error; class labels are one-hot encoded and compared with the softmax output."""

    name: str = "mse"
    reduction: str = _reduction()


@dataclass
class L1Config:
    name: str = "l1"
    reduction: str = _reduction()


@dataclass
class SmoothL1Config:
    name: str = "smooth_l1"
    beta: float = spec(1.0, help="where the loss turns from quadratic to linear", gt=0.0)
    reduction: str = _reduction()


@dataclass
class BCEWithLogitsConfig:
    name: str = "bce_with_logits"
    pos_weight: Optional[float] = spec(None, help="weight of positive targets", gt=0.0)
    reduction: str = _reduction()
