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


VGG_PRESETS = {
    # VGG-11/13/16 layer patterns with halved widths and four pools, sized for 28x28 and 32x32 inputs.
    "vgg11": [32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256],
    "vgg13": [32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M", 256, 256],
    "vgg16": [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M", 256, 256, 256],
}


@dataclass
class VGGConfig:
    name: str = "vgg"
    preset: str = spec("vgg11", help="layer pattern used when `layers` is null", choices=list(VGG_PRESETS))
    layers: Optional[list[Any]] = spec(None, help="conv channels and 'M' (2x2 max-pool); overrides preset")
    batch_norm: bool = spec(True, help="BatchNorm2d after each conv")
    dropout: float = spec(0.5, help="dropout in the classifier", ge=0.0, lt=1.0)
    hidden: int = spec(256, help="width of the classifier's hidden layer", ge=1)


@dataclass
class ResNetConfig:
    name: str = "resnet"
    arch: str = spec("resnet18", help="torchvision ResNet", choices=["resnet18", "resnet34", "resnet50", "resnet101",
                                                                   "resnet152"])
    weights: Optional[str] = spec(None, help="pretrained weights, e.g. DEFAULT or IMAGENET1K_V1 (downloads)")
    small_input: bool = spec(True, help="3x3 stride-1 stem and no max-pool, for 28-32 px images")


@dataclass
class TorchvisionConfig:
    name: str = "torchvision"
    arch: str = spec("mobilenet_v3_small", help="any torchvision classification model name")
    weights: Optional[str] = spec(None, help="pretrained weights, e.g. DEFAULT (downloads)")


@dataclass
class RNNConfig:
    name: str = "lstm"
    hidden_size: int = spec(128, help="hidden units per direction", ge=1)
    num_layers: int = spec(1, help="stacked recurrent layers", ge=1)
    bidirectional: bool = spec(False, help="read sequences both ways")
    dropout: float = spec(0.0, help="dropout between stacked layers", ge=0.0, lt=1.0)


@dataclass
class LeNetConfig:
    name: str = "lenet"
    activation: str = spec("relu", help="activation after conv and fc layers", choices=ACTIVATIONS)


# ---- datasets -----------------------------------------------------------------------------------------------
@dataclass
class FileDatasetConfig:
    """File-backed image datasets (Fashion-MNIST, MNIST, CIFAR-10), decoded once into uint8 tensors."""

    name: str = MISSING
    root: str = spec("data", help="directory searched first (flat, or torchvision's <root>/<Name>/raw/)")
    system_dirs: list[str] = spec([], help="system folders searched after root (Debian's dataset packages)")
    download: bool = spec(False, help="download through torchvision when no local copy is found")
    val_fraction: float = spec(1 / 12, help="share of the training set held out for validation", gt=0.0, lt=1.0)
    normalize: bool = spec(True, help="standardise pixels with the dataset's mean and std")
    mean: list[float] = spec([0.5], help="per-channel mean of the training pixels in [0, 1]")
    std: list[float] = spec([0.5], help="per-channel std of the training pixels in [0, 1]", each_gt=0.0)
    crop_padding: int = spec(0, help="random crop after zero padding by this many pixels (0: off)", ge=0)
    hflip: bool = spec(False, help="random horizontal flips (off for digits and clothing)")


@dataclass
class BlobsConfig:
    """Two Gaussian clusters centred at (2, 2) and (-2, -2): a generated, offline classification task."""

    name: str = "blobs"
    n_train: int = spec(2000, help="training points (before the validation split)", ge=2)
    n_test: int = spec(500, help="test points", ge=1)
    std: float = spec(1.0, help="cluster standard deviation", gt=0.0)
    val_fraction: float = spec(0.2, help="share of the training set held out for validation", gt=0.0, lt=1.0)


@dataclass
class ImageFolderConfig:
    """A folder of class subfolders of images; kept in memory when it fits, else streamed with workers."""

    name: str = "imagefolder"
    root: str = spec("data/images", help="folder with train/ and test/ (and optionally val/) class subfolders")
    image_size: list[int] = spec([32, 32], help="images are resized to (height, width)", each_ge=1)
    grayscale: bool = spec(False, help="convert images to one channel")
    in_memory: str = spec("auto", help="decode all images once into memory", choices=["auto", "true", "false"])
    memory_limit_mb: int = spec(2048, help="largest decoded size kept in memory with in_memory=auto", ge=1)
    num_workers: int = spec(2, help="DataLoader workers when streaming", ge=0)
    val_fraction: float = spec(0.1, help="validation share of train/ when there is no val/", gt=0.0, lt=1.0)
    normalize: bool = spec(True, help="standardise pixels with mean and std")
    mean: list[float] = spec([0.5, 0.5, 0.5], help="per-channel mean in [0, 1]")
    std: list[float] = spec([0.5, 0.5, 0.5], help="per-channel std in [0, 1]", each_gt=0.0)
    crop_padding: int = spec(0, help="random crop after zero padding (0: off)", ge=0)
    hflip: bool = spec(True, help="random horizontal flips")


@dataclass
class SineConfig:
    """Regression: sequences of sin(t) as input, cos(t) as target, at random phases and frequencies."""

    name: str = "sine"
    default_objective: str = spec("val/loss", help="what `objective` becomes unless set: regression has no accuracy")
    n_train: int = spec(2000, help="training sequences (before the validation split)", ge=2)
    n_test: int = spec(400, help="test sequences", ge=1)
    length: int = spec(50, help="time steps per sequence", ge=2)
    val_fraction: float = spec(0.2, help="share of the training set held out for validation", gt=0.0, lt=1.0)


# ---- optimizers ---------------------------------------------------------------------------------------------
@dataclass
class SGDConfig:
    name: str = "sgd"
    no_decay_bias_norm: bool = spec(False, help="no weight decay on biases and normalisation parameters")
    lr: float = spec(0.01, help="learning rate", gt=0.0)
    momentum: float = spec(0.9, help="momentum factor", ge=0.0, lt=1.0)
    nesterov: bool = spec(False, help="Nesterov momentum (needs momentum > 0)")
    dampening: float = spec(0.0, help="momentum dampening", ge=0.0, le=1.0)
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


@dataclass
class AdamConfig:
    name: str = "adam"
    no_decay_bias_norm: bool = spec(False, help="no weight decay on biases and normalisation parameters")
    lr: float = spec(1e-3, help="learning rate", gt=0.0)
    betas: list[float] = spec([0.9, 0.999], help="running-average coefficients", each_ge=0.0, each_lt=1.0)
    eps: float = spec(1e-8, help="denominator term for stability", gt=0.0)
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = spec(0.01, help="decoupled weight decay", ge=0.0)


@dataclass
class NAdamConfig(AdamConfig):
    name: str = "nadam"
    lr: float = spec(2e-3, help="learning rate", gt=0.0)


@dataclass
class RMSpropConfig:
    name: str = "rmsprop"
    no_decay_bias_norm: bool = spec(False, help="no weight decay on biases and normalisation parameters")
    lr: float = spec(1e-3, help="learning rate", gt=0.0)
    alpha: float = spec(0.99, help="smoothing constant", gt=0.0, lt=1.0)
    eps: float = spec(1e-8, help="denominator term for stability", gt=0.0)
    momentum: float = spec(0.0, help="momentum factor", ge=0.0, lt=1.0)
    centered: bool = spec(False, help="normalise by the estimated variance")
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


@dataclass
class AdagradConfig:
    name: str = "adagrad"
    no_decay_bias_norm: bool = spec(False, help="no weight decay on biases and normalisation parameters")
    lr: float = spec(1e-2, help="learning rate", gt=0.0)
    lr_decay: float = spec(0.0, help="learning-rate decay", ge=0.0)
    eps: float = spec(1e-10, help="denominator term for stability", gt=0.0)
    weight_decay: float = spec(0.0, help="L2 penalty", ge=0.0)


# ---- schedulers ---------------------------------------------------------------------------------------------
# Every schedule takes a linear warm-up (`warmup_steps` optimizer steps from warmup_start_factor × lr).
@dataclass
class NoSchedulerConfig:
    name: str = "none"
    warmup_steps: int = spec(0, help="linear warm-up over this many optimizer steps (0: none)", ge=0)
    warmup_start_factor: float = spec(0.1, help="warm-up starts at this fraction of the lr", gt=0.0, le=1.0)


@dataclass
class StepLRConfig(NoSchedulerConfig):
    name: str = "step"
    step_size: int = spec(1, help="epochs between decays", ge=1)
    gamma: float = spec(0.1, help="decay factor", gt=0.0)


@dataclass
class CosineConfig(NoSchedulerConfig):
    name: str = "cosine"
    t_max: Optional[int] = spec(None, help="epochs of one half cosine (default: trainer.epochs)", ge=1)
    eta_min: float = spec(0.0, help="final learning rate", ge=0.0)


@dataclass
class PlateauConfig(NoSchedulerConfig):
    name: str = "plateau"
    monitor: str = spec("val/loss", help="metric watched for a plateau")
    mode: str = spec("auto", help="min, max, or auto (from the metric name)", choices=["auto", "min", "max"])
    factor: float = spec(0.1, help="decay factor", gt=0.0, lt=1.0)
    patience: int = spec(2, help="epochs without improvement before a decay", ge=0)
    threshold: float = spec(1e-4, help="relative improvement that counts", ge=0.0)
    min_lr: float = spec(0.0, help="lower bound on the learning rate", ge=0.0)


@dataclass
class MultiStepConfig(NoSchedulerConfig):
    name: str = "multistep"
    milestones: list[int] = spec([30, 60], help="epochs at which the lr is multiplied by gamma", each_ge=1)
    gamma: float = spec(0.1, help="decay factor", gt=0.0)


@dataclass
class ExponentialConfig(NoSchedulerConfig):
    name: str = "exponential"
    gamma: float = spec(0.9, help="decay factor per epoch", gt=0.0)


@dataclass
class LambdaConfig(NoSchedulerConfig):
    name: str = "lambda"
    formula: str = spec("0.95 ** epoch", help="lr factor as a formula in `epoch` (arithmetic and math functions)")


@dataclass
class OneCycleConfig(NoSchedulerConfig):
    name: str = "onecycle"
    max_lr: Optional[float] = spec(None, help="peak lr (default: 10 × optimizer.lr)", gt=0.0)
    pct_start: float = spec(0.3, help="share of the run spent rising", gt=0.0, lt=1.0)
    anneal_strategy: str = spec("cos", help="shape of the fall", choices=["cos", "linear"])
    div_factor: float = spec(25.0, help="initial lr = max_lr / div_factor", gt=0.0)
    final_div_factor: float = spec(1e4, help="final lr = initial lr / final_div_factor", gt=0.0)


# ---- losses -------------------------------------------------------------------------------------------------
@dataclass
class CrossEntropyConfig:
    name: str = "cross_entropy"
    weight: Optional[list[float]] = spec(None, help="per-class weights (one per class)", each_ge=0.0)
    label_smoothing: float = spec(0.0, help="label smoothing", ge=0.0, le=1.0)


@dataclass
class NLLConfig:
    name: str = "nll"
    weight: Optional[list[float]] = spec(None, help="per-class weights (one per class)", each_ge=0.0)


@dataclass
class FocalConfig:
    name: str = "focal"
    gamma: float = spec(2.0, help="focusing parameter (0: cross entropy)", ge=0.0)
    alpha: Optional[float] = spec(None, help="weight of the positive term, in [0, 1] (null: none)", ge=0.0, le=1.0)


@dataclass
class MSEConfig:
    """Mean squared error; class labels are one-hot encoded and compared with the softmax output."""

    name: str = "mse"


@dataclass
class L1Config:
    name: str = "l1"


@dataclass
class SmoothL1Config:
    name: str = "smooth_l1"
    beta: float = spec(1.0, help="where the loss turns from quadratic to linear", gt=0.0)


@dataclass
class BCEWithLogitsConfig:
    name: str = "bce_with_logits"
    pos_weight: Optional[float] = spec(None, help="weight of positive targets", gt=0.0)


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
    objective: str = spec("${oc.select:dataset.default_objective,val/acc}",
                          help="metric a sweep optimises; also picks best.pt (default: val/acc, val/loss for regression)")
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
    "model": {"mlp": MLPConfig, "cnn": CNNConfig, "lenet": LeNetConfig, "vgg": VGGConfig, "resnet": ResNetConfig,
              "torchvision": TorchvisionConfig, "rnn": RNNConfig, "lstm": RNNConfig, "gru": RNNConfig},
    "dataset": {"fashionmnist": FileDatasetConfig, "mnist": FileDatasetConfig, "blobs": BlobsConfig,
                "cifar10": FileDatasetConfig, "imagefolder": ImageFolderConfig, "sine": SineConfig},
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig, "nadam": NAdamConfig,
                  "rmsprop": RMSpropConfig, "adagrad": AdagradConfig},
    "scheduler": {"none": NoSchedulerConfig, "step": StepLRConfig, "multistep": MultiStepConfig,
                  "exponential": ExponentialConfig, "cosine": CosineConfig, "plateau": PlateauConfig,
                  "lambda": LambdaConfig, "onecycle": OneCycleConfig},
    "loss": {"cross_entropy": CrossEntropyConfig, "nll": NLLConfig, "focal": FocalConfig, "mse": MSEConfig,
             "l1": L1Config, "smooth_l1": SmoothL1Config, "bce_with_logits": BCEWithLogitsConfig},
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
