"""What a model needs to know about a built-in dataset, told by its config alone: no file is read and no data is
made, so `trainctl summary` can size a model for CIFAR-10 on a machine that has no CIFAR-10.

Each built-in source also writes its spec when it loads (`DataBundle.spec`); a test holds the two equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from trainctl.config.dataset_shapes import PLACEHOLDER_CLASSES, SPECS
from trainctl.errors import UserError

if TYPE_CHECKING:
    from trainctl.data.splits import DataSpec


def spec_from_config(cfg: DictConfig) -> tuple[DataSpec, list[str]]:
    """The dataset's input shape and classes, and notes on what is assumed rather than known."""
    name = cfg.get("name")
    if name not in SPECS:
        raise UserError(f"`trainctl summary` needs a built-in dataset ({', '.join(SPECS)}): the input shape of "
                        f"dataset '{name}' is unknown without loading its data. Pass a built-in dataset of the "
                        "same shape, e.g. dataset=cifar10 for 3x32x32 images.")
    notes = []
    if name == "imagefolder":
        notes.append(f"imagefolder's classes are its folders, not read here: the last layer is sized for a "
                     f"placeholder {PLACEHOLDER_CLASSES} classes (a real run sizes it for its folders).")
    from trainctl.data.splits import DataSpec  # brings torch, which the model needs next anyway

    return DataSpec(**SPECS[name](cfg)), notes
