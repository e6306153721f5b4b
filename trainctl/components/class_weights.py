"""Per-class weights of classification losses: a list given in the config, or `balanced` from the training labels.

`balanced` follows scikit-learn's `class_weight="balanced"`: weight_c = n_samples / (n_classes × count_c), so
every class adds the same total weight to the loss and a class 10× rarer counts 10× more per sample. The
counts are taken once, when the loss is built, from the training split (after `dataset.train_size`), never per
step. A class with no training sample would get an infinite weight: that is refused, naming the class.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from omegaconf import DictConfig

from trainctl.data.splits import DataSpec
from trainctl.errors import UserError

log = logging.getLogger("trainctl")
BALANCED = "balanced"


def _class_name(spec: DataSpec, index: int) -> str:
    names = spec.class_names
    return f"{index} ({names[index]!r})" if index < len(names) else str(index)


def balanced_weights(labels: torch.Tensor | None, spec: DataSpec) -> list[float]:
    """n_samples / (n_classes × count_c) for each class, from the training split's labels (one host sync)."""
    if labels is None:
        raise UserError("loss.weight=balanced counts the training split's labels, and this dataset streams them "
                        "from disk (dataset.in_memory=false): give one weight per class instead, e.g. "
                        f"loss.weight=[{','.join(['1.0'] * spec.num_classes)}]")
    counts = torch.bincount(labels.reshape(-1).long(), minlength=spec.num_classes).cpu().tolist()
    empty = [c for c, n in enumerate(counts) if n == 0]
    if empty:
        shown = ", ".join(_class_name(spec, c) for c in empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise UserError(f"loss.weight=balanced: class {shown} has no sample in the training split, so its weight "
                        "n_samples / (n_classes × 0) is infinite. Give the weights yourself (loss.weight=[...], 0 "
                        "for a class to ignore), or train on data that has every class (dataset.train_size)")
    total = sum(counts)
    weights = [total / (spec.num_classes * n) for n in counts]
    log.info("loss.weight=balanced: class weights %s from training counts %s",
             [round(w, 4) for w in weights], counts)
    return weights


def per_class(key: str, values: Sequence[Any], spec: DataSpec, if_all_zero: str) -> torch.Tensor:
    """`values` as a float tensor of one weight per class; a wrong length or all zeros is a UserError."""
    weights = [float(v) for v in values]
    if len(weights) != spec.num_classes:
        raise UserError(
            f"{key} has {len(weights)} values but the dataset has {spec.num_classes} classes: "
            f"give one weight per class, e.g. {key}=[{','.join(['1.0'] * spec.num_classes)}]"
        )
    if not any(w > 0 for w in weights):
        raise UserError(f"{key}={weights} gives every class weight 0, so {if_all_zero}: "
                        "give at least one class a positive weight")
    return torch.tensor(weights, dtype=torch.float32)


def with_balanced_weights(cfg: DictConfig, spec: DataSpec, labels: torch.Tensor | None) -> DictConfig:
    """The loss config with `weight=balanced` replaced by the weights it stands for (a copy; others unchanged),
    so every builder, a plugin's too, reads a list."""
    if cfg.get("weight") != BALANCED:
        return cfg
    resolved = cfg.copy()
    resolved.weight = balanced_weights(labels, spec)
    return resolved


def class_weights(cfg: DictConfig, spec: DataSpec) -> torch.Tensor | None:
    """`loss.weight` as a tensor of one weight per class, or None."""
    weight = cfg.get("weight")
    if weight is None:
        return None
    if isinstance(weight, str):  # a caller that skipped config validation, or built without the training labels
        raise UserError(f"loss.weight={weight!r} is not a list of per-class weights here: give a list of numbers "
                        "(balanced is resolved by build_loss from the training labels)")
    return per_class("loss.weight", weight, spec, "the mean loss is 0/0 (NaN)")
