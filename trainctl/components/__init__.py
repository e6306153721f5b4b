"""Component registries and their builders; importing this package registers every built-in name."""

from trainctl.components import cifar, convnets, imagefolder, recurrent  # noqa: F401  (register on import)
from trainctl.components.datasets import DATASETS, build_dataset
from trainctl.components.losses import LOSSES, build_loss
from trainctl.components.models import MODELS, build_model
from trainctl.components.optimizers import OPTIMIZERS, build_optimizer
from trainctl.components.schedulers import SCHEDULERS, build_scheduler

REGISTRIES = {
    "model": MODELS,
    "dataset": DATASETS,
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
