"""A user's own transforms: `dataset.train_transforms` and `dataset.eval_transforms`, lists of `_target_`s.

Each runs after trainctl's own ones (crop and flip in training, then scaling to [0, 1] and normalisation), on a
float batch `[N, C, H, W]` on the training device, so a transform written with tensor ops (or a torchvision
`transforms.v2` module, which takes batches) costs a few kernels per batch. An entry with `per_sample: true`
is called once per sample on the CPU instead (the tutorials' `Lambda(lambda x: ...)` style): the batch goes to
the host and back and Python loops over it, which is slow on large data; the log says so once.

A `_target_` is a class (built once with the entry's other keys; its instances are called) or a Python function
(called with the batch and the entry's other keys); each is checked before anything is called, and targets nested
in an entry (`torchvision.transforms.v2.Compose`'s `transforms`) are built first (`trainctl.data.user_targets`). Randomness should come from torch's global generator, which
the run seeds and checkpoints, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from omegaconf import DictConfig, ListConfig

from trainctl.data.splits import Transform
from trainctl.data.transforms import image_transforms
from trainctl.data.user_targets import build_callable
from trainctl.errors import UserError, what_raised

log = logging.getLogger("trainctl")
OWN_KEYS = ("per_sample",)  # read here, never passed to the transform


def _build_one(node: Any, key: str) -> Callable[[torch.Tensor], torch.Tensor]:
    fn = build_callable(node, key, own=OWN_KEYS)
    per_sample = isinstance(node, (DictConfig, dict)) and bool(node.get("per_sample", False))
    return _per_sample(fn, key) if per_sample else fn


def _per_sample(fn: Callable, key: str) -> Callable[[torch.Tensor], torch.Tensor]:
    warned = []

    def apply(batch: torch.Tensor) -> torch.Tensor:
        if not warned:
            warned.append(True)
            log.info("%s runs once per sample on the CPU (per_sample: true): expect it to cost speed", key)
        out = torch.stack([fn(sample) for sample in batch.cpu()])
        return out.to(batch.device, non_blocking=True)

    return apply


def build_user_transforms(items: ListConfig | list | None, key: str) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The transforms a `dataset.<key>` list names, built once, in order."""
    if not items:
        return []
    if not isinstance(items, (ListConfig, list)):
        raise UserError(f"dataset.{key} must be a list of transforms, each with a _target_")
    return [_build_one(item, f"dataset.{key}.{i}") for i, item in enumerate(items)]


def with_user_transforms(base: Transform, extra: list[Callable[[torch.Tensor], torch.Tensor]], key: str
                         ) -> Transform:
    """`base` followed by the user's transforms; a transform that fails or changes the shape is named."""
    if not extra:
        return base

    def transform(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = base(x, generator)
        for i, fn in enumerate(extra):
            try:
                out = fn(x)
            except Exception as e:  # noqa: BLE001  (the user's code: say whose, and its first line)
                raise UserError(f"dataset.{key}.{i} raised {what_raised(e)}. It is called with a float "
                                f"batch of shape [N, C, H, W] on the training device.") from None
            if not isinstance(out, torch.Tensor) or out.shape != x.shape:
                # the model was built for the dataset's shape: a transform that changes it would break it
                raise UserError(f"dataset.{key}.{i} must return a tensor of the batch's shape {tuple(x.shape)}; "
                                f"it returned {type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
            x = out
        return x

    return transform


def user_transforms_of(cfg: DictConfig) -> tuple[list[Callable], list[Callable]]:
    """(train, eval) user transforms of a dataset config."""
    return (build_user_transforms(cfg.get("train_transforms"), "train_transforms"),
            build_user_transforms(cfg.get("eval_transforms"), "eval_transforms"))


def transforms_from(cfg: DictConfig) -> tuple[Transform, Transform]:
    """(train, eval) transforms of an image dataset config: augmentation, scaling, normalisation, then the
    user's own (`dataset.train_transforms`, `dataset.eval_transforms`)."""
    train, evaluate = image_transforms(list(cfg.mean), list(cfg.std), cfg.normalize, cfg.get("crop_padding", 0),
                                       cfg.get("hflip", False))
    user_train, user_eval = user_transforms_of(cfg)
    return (with_user_transforms(train, user_train, "train_transforms"),
            with_user_transforms(evaluate, user_eval, "eval_transforms"))
