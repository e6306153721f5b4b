"""The dataset group's `_target_` escape hatch: a user's map-style `torch.utils.data.Dataset`, read into memory.

A config such as `myconf/dataset/mine.yaml` holding `{_target_: mypkg.MyData, root: ...}` names a Dataset
class built the way torchvision's are, with `train=True` for the training split and `train=False` for the test
split (so `torchvision.datasets.FashionMNIST` itself works, with `root`). Each sample is `(input, label)`; an
input is a PIL image, a numpy array or a tensor. The splits are read once, sample by sample on the CPU, and then
held as tensors like the built-in datasets, so training pays nothing per sample:

- uint8 `[C, H, W]` images (and PIL images) are images: scaled, normalised (`mean`, `std`, `normalize`) and
  augmented (`crop_padding`, `hflip`) per batch on the device, as the built-in image datasets are;
- other inputs are used as they are (floats).
Integer labels make a classification task (classes from the dataset's `classes` attribute, else the largest
label + 1); float labels make a regression task. Settings that are `_target_`s themselves (`transform`,
`target_transform`) are built first, each checked as transforms are (`trainctl.data.user_targets`). The keys trainctl reads itself are in `OWN_KEYS`; the others go
to the class.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from trainctl.config.schemas.datasets import TARGET_DATASET_KEYS
from trainctl.config.targets import builds, import_target, instantiate_target
from trainctl.data.splits import DataBundle, DataSpec, Split, identity, split_off_validation
from trainctl.data.user_targets import build_tree, check_tree, is_target, plain
from trainctl.errors import UserError

OWN_KEYS = ("name", *TARGET_DATASET_KEYS)
DEFAULTS = {"val_fraction": 0.1, "normalize": True, "crop_padding": 0, "hflip": False}


def _check_dataset(path: str, target: Any, key: str) -> None:
    built = builds(target)
    if built is None or not issubclass(built, torch.utils.data.Dataset):
        raise UserError(f"{key}._target_={path} does not build a torch.utils.data.Dataset: give a Dataset class "
                        "whose constructor takes train=True/False (as torchvision's datasets do).")
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    if "train" not in params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        raise UserError(f"{key}._target_={path} takes no `train` argument: trainctl builds the training split with "
                        "train=True and the test split with train=False; add that argument to the class.")


def _nested_targets(cfg: DictConfig, keys: list[str]) -> dict[str, Any]:
    """The settings that are `_target_`s of their own (`transform`, `target_transform`), every one checked before
    any is built; each must be an argument the dataset class takes."""
    target = import_target(str(cfg._target_), "dataset")
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in keys:
        if not takes_any and key not in params:
            raise UserError(f"dataset.{key}: {cfg._target_} takes no argument {key!r} (it takes "
                            f"{', '.join(params) or 'none'}): remove it or fix its name.")
        check_tree(plain(cfg[key]), f"dataset.{key}")
    return {key: build_tree(plain(cfg[key]), f"dataset.{key}") for key in keys}


def _as_tensor(sample: Any, where: str) -> torch.Tensor:
    if isinstance(sample, torch.Tensor):
        return sample
    if isinstance(sample, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(sample))
    if hasattr(sample, "convert") and hasattr(sample, "size"):  # a PIL image
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(sample)
    if isinstance(sample, (int, float)):
        return torch.tensor(sample)
    raise UserError(f"{where} is a {type(sample).__name__}; a sample must be (input, label) with a PIL image, a "
                    "numpy array or a tensor as input")


def _read(dataset: Any, where: str) -> Split:
    """Every sample of a map-style dataset, stacked (once, at load time)."""
    try:
        n = len(dataset)
    except TypeError:
        raise UserError(f"{where} has no len(): give a map-style Dataset (with __len__ and __getitem__)") from None
    if n == 0:
        raise UserError(f"{where} holds no samples")
    xs, ys = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise UserError(f"{where}[{i}] is not an (input, label) pair")
        xs.append(_as_tensor(item[0], f"{where}[{i}] input"))
        ys.append(_as_tensor(item[1], f"{where}[{i}] label"))
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        raise UserError(f"{where} holds inputs of {len(shapes)} shapes ({', '.join(map(str, sorted(shapes)[:3]))}): "
                        "one model takes one shape; resize them in the dataset")
    return Split(torch.stack(xs), torch.stack(ys))


def _spec(train: Split, dataset: Any) -> DataSpec:
    shape = tuple(train.x.shape[1:])
    if train.y.is_floating_point():
        return DataSpec(shape, 0, "regression", target_shape=tuple(train.y.shape[1:]))
    classes = tuple(str(c) for c in getattr(dataset, "classes", ()) or ())
    count = len(classes) or int(train.y.max()) + 1
    return DataSpec(shape, count, "classification", classes or tuple(str(i) for i in range(count)))


def build_user_dataset(cfg: DictConfig, seed: int) -> DataBundle:
    from trainctl.data.splits import check_labels
    from trainctl.data.user_transforms import transforms_from

    own = {k: cfg.get(k, DEFAULTS.get(k)) for k in OWN_KEYS}
    nested = [k for k in cfg.keys() if k not in OWN_KEYS and is_target(plain(cfg[k]))]  # transform: {_target_: ..}
    settings = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k not in OWN_KEYS and k not in nested])
    _check_dataset(str(cfg._target_), import_target(str(cfg._target_), "dataset"), "dataset")
    built = _nested_targets(cfg, nested)
    made = {split: instantiate_target(settings, check=_check_dataset, key="dataset", train=split == "train", **built)
            for split in ("train", "test")}
    full, test = (_read(made[s], f"dataset {cfg._target_}(train={s == 'train'})") for s in ("train", "test"))
    if full.y.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32):
        full, test = Split(full.x, full.y.long()), Split(test.x, test.y.long())
    if full.y.is_floating_point() and full.y.dim() == 1:  # one number per sample: a regression of width 1
        full, test = Split(full.x, full.y.float().unsqueeze(1)), Split(test.x, test.y.float().unsqueeze(1))
    spec = _spec(full, made["train"])
    if spec.task == "classification":
        check_labels(f"dataset {cfg._target_}(train=False)", test.y, spec.num_classes, str(cfg._target_))
    train, val = split_off_validation(full, float(own["val_fraction"]), seed)
    if train.x.dtype == torch.uint8 and train.x.dim() == 4:  # images: the built-in image transforms apply
        channels = train.x.shape[1]
        image_cfg = OmegaConf.create({**own, "mean": own["mean"] or [0.5] * channels,
                                      "std": own["std"] or [0.5] * channels})
        return DataBundle(train, val, test, spec, *transforms_from(image_cfg))
    return DataBundle(train, val, test, spec, identity, identity)
