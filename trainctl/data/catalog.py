"""The dataset registry: `build_dataset(cfg, seed) -> DataBundle` with the data in memory (moved to the device
later). Each data source registers its names when its module is imported; the built-in ones are imported on
first use, so config-only commands never pay for torch.
"""

from __future__ import annotations

import importlib

from omegaconf import DictConfig

from trainctl.data.splits import DataBundle, take_train_subset
from trainctl.registry import Registry

DATASETS: Registry = Registry("dataset")
BUILTIN_SOURCES = ("trainctl.data.idx", "trainctl.data.cifar", "trainctl.data.imagefolder", "trainctl.data.generated")


def load_builtin_datasets() -> Registry:
    """Import every built-in data source so its names are registered; returns the registry."""
    for module in BUILTIN_SOURCES:
        importlib.import_module(module)
    return DATASETS


def build_dataset(cfg: DictConfig, seed: int) -> DataBundle:
    """Build the dataset `cfg` names, keeping `dataset.train_size` training samples (and at most
    `dataset.train_per_class` of each class) when set (here, so every
    data source, plugins' too, gets it alike); an allocation that fails becomes a UserError naming the key to
    lower."""
    from trainctl.data.memory import is_out_of_memory, out_of_memory_error

    from trainctl.config.targets import has_target

    if has_target(cfg):
        from trainctl.data.user_dataset import build_user_dataset

        builder = build_user_dataset
    else:
        builder = load_builtin_datasets().get(cfg.name)
    try:
        return take_train_subset(builder(cfg, seed), cfg.get("train_size"), seed, cfg.get("train_per_class"))
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        raise out_of_memory_error(cfg, e) from None
