"""The input shape and classes of each built-in dataset, as plain values computed from its config alone: no file
is read, no torch imported. Config validation checks `dataset.mean`/`std` against the channels with them, and
`trainctl.data.shapes` turns them into a `DataSpec` for `trainctl summary`."""

from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig

PLACEHOLDER_CLASSES = 2  # imagefolder's classes are its folders, unknown until they are scanned

# DataSpec's fields by dataset name.
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
