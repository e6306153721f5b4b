"""What a model needs to know about a built-in dataset, told by its config alone: no file is read and no data is
made, so `trainctl summary` can size a model for CIFAR-10 on a machine that has no CIFAR-10.

Each built-in source also writes its spec when it loads (`DataBundle.spec`); a test holds the two equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from omegaconf import DictConfig

from trainctl.errors import UserError

if TYPE_CHECKING:
    from trainctl.data.splits import DataSpec

PLACEHOLDER_CLASSES = 2  # imagefolder's classes are its folders, unknown until they are scanned

# DataSpec's fields by dataset name. Plain values, so a config error or an unknown dataset is told without torch.
SPECS: dict[str, Callable[[DictConfig], dict[str, Any]]] = {
    "fashionmnist": lambda cfg: {"input_shape": (1, 28, 28), "num_classes": 10},
    "mnist": lambda cfg: {"input_shape": (1, 28, 28), "num_classes": 10},
    "cifar10": lambda cfg: {"input_shape": (3, 32, 32), "num_classes": 10},
    "imagefolder": lambda cfg: {"input_shape": (1 if cfg.grayscale else 3, *cfg.image_size),
                                "num_classes": PLACEHOLDER_CLASSES},
    "blobs": lambda cfg: {"input_shape": (2,), "num_classes": 2},
    "sine": lambda cfg: {"input_shape": (cfg.length, 1), "num_classes": 0, "task": "regression",
                         "target_shape": (cfg.length, 1)},
}


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
