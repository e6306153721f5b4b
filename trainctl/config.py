"""Typed schemas for every config option, registered in Hydra's ConfigStore.

Each YAML option (`conf/model/cnn.yaml`) starts from its schema (`/schema/model/cnn`), so Hydra rejects unknown
keys (`optimizer.lrr=0.1`) and wrong types (`trainer.epochs=abc`) while composing, naming the key. Ranges cannot
be expressed in OmegaConf types, so fields carry them as metadata (`ge`, `gt`, `le`, `lt`, `choices`) and
`trainctl.validate` checks them before any output is written.

This module must stay free of torch: `trainctl --help` and Hydra's `--help` import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import util as importlib_util
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

GROUPS = ("model", "dataset", "optimizer", "scheduler", "loss", "device")


def spec(default: Any = MISSING, *, help: str = "", **limits: Any) -> Any:
    """A dataclass field with a help text and range limits (ge, gt, le, lt, choices) for the validator."""
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help, **limits})
    return field(default=default, metadata={"help": help, **limits})


# ---- models -------------------------------------------------------------------------------------------------
ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu"]


@dataclass
class MLPConfig:
    name: str = "mlp"
    hidden: list[int] = spec([512, 512], help="hidden layer widths", each_ge=1)
    activation: str = spec("relu", help="activation between layers", choices=ACTIVATIONS)
    dropout: float = spec(0.0, help="dropout after each hidden layer", ge=0.0, lt=1.0)
    batch_norm: bool = spec(False, help="BatchNorm1d after each hidden linear layer")


@dataclass
class CNNConfig:
    name: str = "cnn"
    channels: list[int] = spec([16, 32], help="output channels of the two conv layers", each_ge=1)
    kernel_size: int = spec(5, help="conv kernel size (odd keeps the spatial size)", ge=1)


@dataclass
class LeNetConfig:
    name: str = "lenet"
    activation: str = spec("relu", help="activation after conv and fc layers", choices=ACTIVATIONS)


# ---- datasets -----------------------------------------------------------------------------------------------
@dataclass
class IdxDatasetConfig:
    """Fashion-MNIST / MNIST: IDX files decoded once into uint8 tensors on the training device."""

    name: str = MISSING
    root: str = spec("data", help="directory searched first (flat, or torchvision's <root>/<Name>/raw/)")
    system_dirs: list[str] = spec([], help="system folders searched after root (Debian's dataset packages)")
    download: bool = spec(False, help="download through torchvision when no local copy is found")
    val_fraction: float = spec(1 / 12, help="share of the training set held out for validation", gt=0.0, lt=1.0)
    normalize: bool = spec(True, help="standardise pixels with the dataset's mean and std")
    mean: list[float] = spec([0.5], help="per-channel mean of the training pixels in [0, 1]")
    std: list[float] = spec([0.5], help="per-channel std of the training pixels in [0, 1]", each_gt=0.0)


@dataclass
class BlobsConfig:
    """Two Gaussian clusters centred at (2, 2) and (-2, -2): a generated, offline classification task."""

    name: str = "blobs"
    n_train: int = spec(2000, help="training points (before the validation split)", ge=2)
    n_test: int = spec(500, help="test points", ge=1)
    std: float = spec(1.0, help="cluster standard deviation", gt=0.0)
    val_fraction: float = spec(0.2, help="share of the training set held out for validation", gt=0.0, lt=1.0)


# ---- optimizers ---------------------------------------------------------------------------------------------
@dataclass
class SGDConfig:
    name: str = "sgd"
    lr: float = spec(0.01, help="learning rate", gt=0.0)
    momentum: float = spec(0.9, help="momentum factor", ge=0.0, lt=1.0)
    nesterov: bool = spec(False, help="Nesterov momentum (needs momentum > 0)")
    dampening: float = spec(0.0, help="momentum dampening", ge=0.0, le=1.0)
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


@dataclass
class AdamConfig:
    name: str = "adam"
    lr: float = spec(1e-3, help="learning rate", gt=0.0)
    betas: list[float] = spec([0.9, 0.999], help="running-average coefficients", each_ge=0.0, each_lt=1.0)
    eps: float = spec(1e-8, help="denominator term for stability", gt=0.0)
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


# ---- schedulers (stepped once per epoch) ---------------------------------------------------------------------
@dataclass
class NoSchedulerConfig:
    name: str = "none"


@dataclass
class StepLRConfig:
    name: str = "step"
    step_size: int = spec(1, help="epochs between decays", ge=1)
    gamma: float = spec(0.1, help="decay factor", gt=0.0)


@dataclass
class CosineConfig:
    name: str = "cosine"
    t_max: Optional[int] = spec(None, help="epochs of one half cosine (default: trainer.epochs)", ge=1)
    eta_min: float = spec(0.0, help="final learning rate", ge=0.0)


@dataclass
class PlateauConfig:
    name: str = "plateau"
    monitor: str = spec("val/loss", help="metric watched for a plateau")
    mode: str = spec("auto", help="min, max, or auto (from the metric name)", choices=["auto", "min", "max"])
    factor: float = spec(0.1, help="decay factor", gt=0.0, lt=1.0)
    patience: int = spec(2, help="epochs without improvement before a decay", ge=0)
    threshold: float = spec(1e-4, help="relative improvement that counts", ge=0.0)
    min_lr: float = spec(0.0, help="lower bound on the learning rate", ge=0.0)


# ---- losses -------------------------------------------------------------------------------------------------
@dataclass
class CrossEntropyConfig:
    name: str = "cross_entropy"
    weight: Optional[list[float]] = spec(None, help="per-class weights (one per class)", each_ge=0.0)
    label_smoothing: float = spec(0.0, help="label smoothing", ge=0.0, le=1.0)


@dataclass
class MSEConfig:
    """Mean squared error; class labels are one-hot encoded and compared with the softmax output."""

    name: str = "mse"


# ---- device -------------------------------------------------------------------------------------------------
@dataclass
class DeviceConfig:
    name: str = spec("auto", help="auto picks cuda > mps > cpu", choices=["auto", "cpu", "cuda", "mps"])


# ---- top level ----------------------------------------------------------------------------------------------
@dataclass
class TrainerConfig:
    epochs: int = spec(5, help="passes over the training split", ge=1)
    batch_size: int = spec(64, help="training batch size", ge=1)
    eval_batch_size: int = spec(1024, help="batch size for validation and test", ge=1)
    log_every_n_steps: int = spec(50, help="steps between progress/loss reads (each read is a host sync)", ge=1)
    progress: bool = spec(True, help="show a live progress bar on a terminal")
    max_steps_per_epoch: Optional[int] = spec(None, help="cap on steps per epoch (smoke runs)", ge=1)


@dataclass
class CheckpointConfig:
    monitor: str = spec("${objective}", help="metric that decides best.pt")
    mode: str = spec("auto", help="min, max, or auto (from the metric name)", choices=["auto", "min", "max"])


@dataclass
class TrainConfig:
    seed: int = spec(0, help="seeds weights, split and shuffle", ge=0)
    objective: str = spec("val/acc", help="metric a sweep optimises; also picks best.pt")
    resume: Optional[str] = spec(None, help="run directory or checkpoint to continue")
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    model: Any = MISSING
    dataset: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    loss: Any = MISSING
    device: Any = MISSING


# One schema per option; the option's YAML file pulls it in with `- /schema/<group>/<name>@_here_`.
SCHEMAS: dict[str, dict[str, type]] = {
    "model": {"mlp": MLPConfig, "cnn": CNNConfig, "lenet": LeNetConfig},
    "dataset": {"fashionmnist": IdxDatasetConfig, "mnist": IdxDatasetConfig, "blobs": BlobsConfig},
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig},
    "scheduler": {"none": NoSchedulerConfig, "step": StepLRConfig, "cosine": CosineConfig, "plateau": PlateauConfig},
    "loss": {"cross_entropy": CrossEntropyConfig, "mse": MSEConfig},
    "device": {"auto": DeviceConfig, "cpu": DeviceConfig, "cuda": DeviceConfig, "mps": DeviceConfig},
}


def register_schemas() -> None:
    """Put every schema in Hydra's ConfigStore (idempotent: the store simply replaces equal entries)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for group, options in SCHEMAS.items():
        for name, schema in options.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


def config_dir() -> Path:
    """The config tree: `trainctl.conf` when installed, the repository's `conf/` when run from a checkout."""
    found = importlib_util.find_spec("trainctl.conf")
    if found is not None and found.submodule_search_locations:
        return Path(list(found.submodule_search_locations)[0])
    return Path(__file__).resolve().parent.parent / "conf"


def group_options(group: str, extra_dirs: tuple[Path, ...] = ()) -> list[str]:
    """Names of the YAML options of a config group (the packaged tree plus any extra config dirs)."""
    names: set[str] = set()
    for base in (config_dir(), *extra_dirs):
        names.update(p.stem for p in (base / group).glob("*.yaml"))
    return sorted(names)
