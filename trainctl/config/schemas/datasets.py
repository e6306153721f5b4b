"""Schemas of the `dataset` group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING

from trainctl.config.schemas.fields import spec


# Every dataset has it: a learning curve, a quick try or an overfitting check on less data, same validation.
TRAIN_SIZE_HELP = ("train on a seeded random N samples of the training split, taken after the validation split is "
                   "held out (validation unchanged; same seed, same samples); null: all")
TRAIN_PER_CLASS_HELP = ("train on at most N seeded random samples of each class (a balanced small subset, e.g. to "
                        "show overfitting); applied before train_size; null: all")


# The keys trainctl reads itself from a `_target_` dataset (the rest go to the class): typed on the command line
# without a `+`, as on the built-in datasets (`trainctl.config.overrides.own_dataset_keys`).
TARGET_DATASET_KEYS = ("val_fraction", "train_size", "train_per_class", "normalize", "mean", "std", "crop_padding",
                       "hflip", "train_transforms", "eval_transforms", "label_transforms")


TRANSFORMS_HELP = ("your own transforms after trainctl's ({when}): a list of {{_target_: class or function, ...}}, "
                   "each called on a float batch [N, C, H, W] on the device; per_sample: true calls it per sample "
                   "on the CPU (slow)")


def transforms_field(when: str) -> Any:
    return spec([], help=TRANSFORMS_HELP.format(when=when))


def label_transforms_field() -> Any:
    return spec([], help="what the loss sees of the labels: a list of {_target_: class or function, ...}, each called "
                         "on a batch of labels on the device, e.g. [{_target_: trainctl.data.labels.one_hot, "
                         "num_classes: 10}]; metrics still count class numbers")


# ---- datasets -----------------------------------------------------------------------------------------------
@dataclass
class FileDatasetConfig:
    """File-backed image datasets (Fashion-MNIST, MNIST, CIFAR-10), decoded once into uint8 tensors."""

    name: str = MISSING
    root: str = spec("data", help="directory searched first (flat, or torchvision's <root>/<Name>/raw/)")
    system_dirs: list[str] = spec([], help="system folders searched after root (Debian's dataset packages)")
    download: bool = spec(False, help="download through torchvision when no local copy is found")
    val_fraction: float = spec(1 / 12, help="share of the training set held out for validation", gt=0.0, lt=1.0)
    train_size: Optional[int] = spec(None, help=TRAIN_SIZE_HELP, ge=1)
    train_per_class: Optional[int] = spec(None, help=TRAIN_PER_CLASS_HELP, ge=1)
    label_transforms: list[Any] = label_transforms_field()
    normalize: bool = spec(True, help="standardise pixels with the dataset's mean and std")
    mean: list[float] = spec([0.5], help="per-channel mean of the training pixels in [0, 1]")
    std: list[float] = spec([0.5], help="per-channel std of the training pixels in [0, 1]", each_gt=0.0)
    crop_padding: int = spec(0, help="random crop after zero padding by this many pixels (0: off)", ge=0)
    hflip: bool = spec(False, help="random horizontal flips (off for digits and clothing)")
    train_transforms: list[Any] = transforms_field("training batches, after crop, flip and normalisation")
    eval_transforms: list[Any] = transforms_field("validation, test, eval and predict, after normalisation")


@dataclass
class BlobsConfig:
    """Two Gaussian clusters centred at (2, 2) and (-2, -2): a generated, offline classification task."""

    name: str = "blobs"
    n_train: int = spec(2000, help="training points (before the validation split)", ge=2)
    n_test: int = spec(500, help="test points", ge=1)
    std: float = spec(1.0, help="cluster standard deviation", gt=0.0)
    val_fraction: float = spec(0.2, help="share of the training set held out for validation", gt=0.0, lt=1.0)
    train_size: Optional[int] = spec(None, help=TRAIN_SIZE_HELP, ge=1)
    train_per_class: Optional[int] = spec(None, help=TRAIN_PER_CLASS_HELP, ge=1)
    label_transforms: list[Any] = label_transforms_field()


@dataclass
class ImageFolderConfig:
    """A folder of class subfolders of images; kept in memory when it fits, else streamed with workers."""

    name: str = "imagefolder"
    root: str = spec("data/images", help="folder with train/ and test/ (and optionally val/) class subfolders")
    image_size: list[int] = spec([32, 32], help="images are resized to (height, width)", each_ge=1, length=2)
    grayscale: bool = spec(False, help="convert images to one channel")
    in_memory: Optional[bool] = spec(None, help="decode all images once into memory (null: when it fits)")
    memory_limit_mb: int = spec(2048, help="largest decoded size kept in memory when in_memory is null", ge=1)
    num_workers: int = spec(2, help="DataLoader workers when streaming", ge=0)
    val_fraction: float = spec(0.1, help="validation share of train/ when there is no val/", gt=0.0, lt=1.0)
    train_size: Optional[int] = spec(None, help=TRAIN_SIZE_HELP, ge=1)
    train_per_class: Optional[int] = spec(None, help=TRAIN_PER_CLASS_HELP, ge=1)
    label_transforms: list[Any] = label_transforms_field()
    normalize: bool = spec(True, help="standardise pixels with mean and std")
    mean: list[float] = spec([0.5, 0.5, 0.5], help="per-channel mean in [0, 1]")
    std: list[float] = spec([0.5, 0.5, 0.5], help="per-channel std in [0, 1]", each_gt=0.0)
    crop_padding: int = spec(0, help="random crop after zero padding (0: off)", ge=0)
    hflip: bool = spec(True, help="random horizontal flips")
    train_transforms: list[Any] = transforms_field("training batches, after crop, flip and normalisation")
    eval_transforms: list[Any] = transforms_field("validation, test, eval and predict, after normalisation")


@dataclass
class SineConfig:
    """Regression: sequences of sin(t) as input, cos(t) (or the next step's sin) as target, at random phases and
    frequencies."""

    name: str = "sine"
    default_objective: str = spec("val/loss", help="what `objective` becomes unless set: regression has no accuracy")
    n_train: int = spec(2000, help="training sequences (before the validation split)", ge=2)
    n_test: int = spec(400, help="test sequences", ge=1)
    length: int = spec(50, help="time steps per sequence", ge=2)
    frequencies: list[float] = spec([0.5, 1.5], help="[low, high]: each sequence's (each stream's) frequency is "
                                                      "drawn from this range, in cycles per sequence length; "
                                                      "[1, 1]: every sequence one whole period")
    target: str = spec("cos", help="what each step's target is: cos (cos(t): sin→cos), next (sin at the next time "
                                   "step: predict the next value, as pytorch/examples' time-sequence prediction)",
                       choices=["cos", "next"])
    streams: Optional[int] = spec(None, help="cut S continuous signals into consecutive windows, trained in order "
                                             "(no shuffle), window t of stream s at t*S+s, for model.stateful with "
                                             "trainer.batch_size=S; null: independent sequences", ge=1)
    val_fraction: float = spec(0.2, help="share of the training set held out for validation", gt=0.0, lt=1.0)
    train_size: Optional[int] = spec(None, help=TRAIN_SIZE_HELP, ge=1)
    train_per_class: Optional[int] = spec(None, help=TRAIN_PER_CLASS_HELP, ge=1)
    label_transforms: list[Any] = label_transforms_field()
