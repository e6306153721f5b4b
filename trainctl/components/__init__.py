"""Component registries and their builders (models, losses, optimizers, schedules); importing this package
registers every built-in name. Datasets have their own registry in `trainctl.data.catalog`, listed here too so
that one table covers every group."""

from trainctl.components import convnets, recurrent  # noqa: F401  (register on import)
from trainctl.components.losses import LOSSES, build_loss
from trainctl.components.models import MODELS, build_model
from trainctl.components.optimizers import OPTIMIZERS, build_optimizer
from trainctl.components.schedulers import SCHEDULERS, build_scheduler
from trainctl.data.catalog import build_dataset, load_builtin_datasets

REGISTRIES = {
    "model": MODELS,
    "dataset": load_builtin_datasets(),
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "loss": LOSSES,
}

__all__ = [
    "REGISTRIES",
    "build_dataset",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_scheduler",
]
