"""Dataset builders: `build_dataset(cfg, seed) -> DataBundle` with the data in memory (moved to the device later).

Offline first: IDX files are looked for under `dataset.root` (flat, or torchvision's `<root>/<Name>/raw/`, so an
existing torchvision download is reused), then in `dataset.system_dirs` (Debian's `dataset-fashion-mnist` package
installs `/usr/share/datasets/fashion-mnist/`), and only then downloaded, when `dataset.download=true`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from trainctl.data import DataBundle, DataSpec, Split, image_transforms, split_off_validation
from trainctl.errors import UserError
from trainctl.idx import read_idx
from trainctl.registry import Registry

DATASETS: Registry = Registry("dataset")

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


CIFAR_FILES = {f"data_batch_{i}": f"data_batch_{i}" for i in range(1, 6)} | {"test_batch": "test_batch"}


@dataclass(frozen=True)
class FileSource:
    """A file-backed dataset: its files, the sub-folders of root they may sit in, and how to get them."""

    files: dict[str, str]
    subdirs: tuple[str, ...]  # e.g. torchvision's `<root>/FashionMNIST/raw/`, so its downloads are reused
    torchvision_name: str
    install_hint: str


FILE_SOURCES = {
    "fashionmnist": FileSource(IDX_FILES, ("FashionMNIST/raw",), "FashionMNIST",
                               "install Debian's package (apt-get install dataset-fashion-mnist)"),
    "mnist": FileSource(IDX_FILES, ("MNIST/raw",), "MNIST", "install Debian's package (apt-get install dataset-mnist)"),
    "cifar10": FileSource(CIFAR_FILES, ("cifar-10-batches-py",), "CIFAR10",
                          "unpack cifar-10-python.tar.gz there (it holds cifar-10-batches-py/)"),
}


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def candidate_dirs(cfg: DictConfig) -> list[Path]:
    """The folders searched for a file-backed dataset, in order."""
    root = Path(cfg.root).expanduser()
    subdirs = [root / sub for sub in FILE_SOURCES[cfg.name].subdirs]
    return [root, *subdirs, *(Path(d) for d in cfg.system_dirs)]


def locate_files(cfg: DictConfig) -> dict[str, Path] | None:
    """The first folder holding all of a dataset's files, as a map of role → path; None when none does."""
    for folder in candidate_dirs(cfg):
        found = {role: _find_file(folder, stem) for role, stem in FILE_SOURCES[cfg.name].files.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None



def missing_data_message(cfg: DictConfig) -> str:
    source = FILE_SOURCES[cfg.name]
    tried = "\n".join(f"  - {d}" for d in candidate_dirs(cfg))
    return (
        f"dataset '{cfg.name}' not found. Looked for {', '.join(source.files.values())} (.gz or raw) in:\n{tried}\n"
        f"Fix: put the files in {cfg.root}, or {source.install_hint}, or allow a download with dataset.download=true."
    )


def _download(cfg: DictConfig) -> None:
    import torchvision

    dataset_cls = getattr(torchvision.datasets, FILE_SOURCES[cfg.name].torchvision_name)
    try:
        for train in (True, False):
            dataset_cls(root=str(Path(cfg.root).expanduser()), train=train, download=True)
    except Exception as e:  # network errors come in many types; the message is what matters
        raise UserError(f"{missing_data_message(cfg)}\nThe download failed too: {e}") from None


def find_or_download(cfg: DictConfig) -> dict[str, Path]:
    files = locate_files(cfg)
    if files is None and cfg.download:
        _download(cfg)
        files = locate_files(cfg)
    if files is None:
        raise UserError(missing_data_message(cfg))
    return files


def _idx_bundle(cfg: DictConfig, seed: int, class_names: tuple[str, ...]) -> DataBundle:
    files = find_or_download(cfg)
    tensors = {role: read_idx(path) for role, path in files.items()}
    for split in ("train", "test"):
        images, labels = tensors[f"{split}_images"], tensors[f"{split}_labels"]
        if images.dim() != 3 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
            raise UserError(
                f"{files[f'{split}_images']} and {files[f'{split}_labels']} do not match "
                f"(images {tuple(images.shape)}, labels {tuple(labels.shape)}): fetch the dataset again."
            )
    full_train = Split(tensors["train_images"].unsqueeze(1), tensors["train_labels"].long())
    train, val = split_off_validation(full_train, cfg.val_fraction, seed)
    test = Split(tensors["test_images"].unsqueeze(1), tensors["test_labels"].long())
    num_classes = max(len(class_names), int(full_train.y.max()) + 1)
    spec = DataSpec(tuple(full_train.x.shape[1:]), num_classes, "classification", class_names[:num_classes])
    return DataBundle(train, val, test, spec, *transforms_from(cfg))


def transforms_from(cfg: DictConfig):
    """(train, eval) transforms of an image dataset config: augmentation, scaling, normalisation."""
    return image_transforms(list(cfg.mean), list(cfg.std), cfg.normalize, cfg.get("crop_padding", 0),
                            cfg.get("hflip", False))


@DATASETS.register("fashionmnist")
def build_fashionmnist(cfg: DictConfig, seed: int) -> DataBundle:
    """Fashion-MNIST: 28x28 grey clothing images, 10 classes (IDX files, found offline)."""
    return _idx_bundle(cfg, seed, FASHION_CLASSES)


@DATASETS.register("mnist")
def build_mnist(cfg: DictConfig, seed: int) -> DataBundle:
    """MNIST: 28x28 grey handwritten digits, 10 classes (IDX files, found offline)."""
    return _idx_bundle(cfg, seed, tuple(str(d) for d in range(10)))


def _blobs(n: int, std: float, generator: torch.Generator) -> Split:
    labels = torch.arange(n) % 2
    centres = torch.tensor([[2.0, 2.0], [-2.0, -2.0]])[labels]
    points = centres + std * torch.randn(n, 2, generator=generator)
    return Split(points, labels)


@DATASETS.register("blobs")
def build_blobs(cfg: DictConfig, seed: int) -> DataBundle:
    """Two Gaussian clusters at (2, 2) and (-2, -2): generated from the seed, offline, instant."""
    generator = torch.Generator().manual_seed(seed)
    train, val = split_off_validation(_blobs(cfg.n_train, cfg.std, generator), cfg.val_fraction, seed)
    test = _blobs(cfg.n_test, cfg.std, generator)
    return DataBundle(train, val, test, DataSpec((2,), 2, "classification", ("(2,2)", "(-2,-2)")))


def _sine(n: int, length: int, generator: torch.Generator) -> Split:
    phase = torch.rand(n, 1, generator=generator) * 2 * torch.pi
    frequency = 0.5 + torch.rand(n, 1, generator=generator)  # 0.5 to 1.5 radians per unit time
    t = phase + frequency * torch.linspace(0, 2 * torch.pi, length).unsqueeze(0)
    return Split(torch.sin(t).unsqueeze(-1), torch.cos(t).unsqueeze(-1))


@DATASETS.register("sine")
def build_sine(cfg: DictConfig, seed: int) -> DataBundle:
    """Regression: sequences of sin(t) as input and cos(t) as target, at random phases and frequencies."""
    generator = torch.Generator().manual_seed(seed)
    train, val = split_off_validation(_sine(cfg.n_train, cfg.length, generator), cfg.val_fraction, seed)
    test = _sine(cfg.n_test, cfg.length, generator)
    spec = DataSpec((cfg.length, 1), 0, "regression", (), (cfg.length, 1))
    return DataBundle(train, val, test, spec)


def availability(cfg: DictConfig) -> str:
    """One line for `trainctl doctor`: where a dataset would be read from, offline."""
    if cfg.name == "imagefolder":
        return f"your images under {cfg.root}" + ("" if Path(cfg.root, "train").is_dir() else " (not there)")
    if cfg.name not in FILE_SOURCES:
        return "generated (always available)"
    files = locate_files(cfg)
    if files is None:
        return f"not found offline (tried {', '.join(str(d) for d in candidate_dirs(cfg))})"
    return f"found in {next(iter(files.values())).parent}"


def check_available(cfg: DictConfig) -> None:
    """Fail before any output when a file-backed dataset is absent and may not be downloaded."""
    if cfg.get("name") in FILE_SOURCES and not cfg.download and locate_files(cfg) is None:
        raise UserError(missing_data_message(cfg))


def build_dataset(cfg: DictConfig, seed: int) -> DataBundle:
    return DATASETS.get(cfg.name)(cfg, seed)
