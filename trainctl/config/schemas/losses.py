"""Schemas of the `loss` group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from trainctl.config.schemas.fields import spec


# ---- losses -------------------------------------------------------------------------------------------------
@dataclass
class CrossEntropyConfig:
    name: str = "cross_entropy"
    weight: Optional[list[float]] = spec(None, help="per-class weights (one per class)", each_ge=0.0)
    label_smoothing: float = spec(0.0, help="label smoothing", ge=0.0, le=1.0)


@dataclass
class NLLConfig:
    name: str = "nll"
    weight: Optional[list[float]] = spec(None, help="per-class weights (one per class)", each_ge=0.0)


@dataclass
class FocalConfig:
    name: str = "focal"
    gamma: float = spec(2.0, help="focusing parameter (0: cross entropy)", ge=0.0)
    alpha: Optional[float] = spec(None, help="weight of the positive term, in [0, 1] (null: none)", ge=0.0, le=1.0)


@dataclass
class MSEConfig:
    """Mean squared error; class labels are one-hot encoded and compared with the softmax output."""

    name: str = "mse"


@dataclass
class L1Config:
    name: str = "l1"


@dataclass
class SmoothL1Config:
    name: str = "smooth_l1"
    beta: float = spec(1.0, help="where the loss turns from quadratic to linear", gt=0.0)


@dataclass
class BCEWithLogitsConfig:
    name: str = "bce_with_logits"
    pos_weight: Optional[float] = spec(None, help="weight of positive targets", gt=0.0)
