"""Component registries and their builders: models, losses, optimizers, schedules (datasets have their own
registry in `trainctl.data.catalog`, listed here too so that one table covers every group).

Imported lazily (PEP 562): `trainctl.components.plugins` must load without torch, and
`from trainctl.components import build_model` imports the builders, which register every built-in name.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_model": "trainctl.components.models", "MODELS": "trainctl.components.models",
    "build_loss": "trainctl.components.losses", "LOSSES": "trainctl.components.losses",
    "build_optimizer": "trainctl.components.optimizers", "OPTIMIZERS": "trainctl.components.optimizers",
    "build_scheduler": "trainctl.components.schedulers", "SCHEDULERS": "trainctl.components.schedulers",
    "build_dataset": "trainctl.data.catalog",
}
_MODEL_MODULES = ("trainctl.components.convnets", "trainctl.components.recurrent", "trainctl.components.conv1d")  # register on import

__all__ = [*_EXPORTS, "REGISTRIES"]


def registries() -> dict[str, Any]:
    """Every group's registry, with all built-in names registered."""
    for module in _MODEL_MODULES:
        importlib.import_module(module)
    from trainctl.components.losses import LOSSES
    from trainctl.components.models import MODELS
    from trainctl.components.optimizers import OPTIMIZERS
    from trainctl.components.schedulers import SCHEDULERS
    from trainctl.data.catalog import load_builtin_datasets

    return {"model": MODELS, "dataset": load_builtin_datasets(), "optimizer": OPTIMIZERS,
            "scheduler": SCHEDULERS, "loss": LOSSES}


def __getattr__(name: str) -> Any:
    if name == "REGISTRIES":
        return registries()
    if name in _EXPORTS:
        for module in _MODEL_MODULES:  # a model name must be registered before build_model looks it up
            importlib.import_module(module)
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trainctl.components' has no attribute {name!r}")
