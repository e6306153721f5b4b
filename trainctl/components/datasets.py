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

from trainctl.data import DataBundle, DataSpec, Split, image_normalizer, split_off_validation
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


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset's four files may be: the torchvision class name picks its `<root>/<Name>/raw/`."""

    torchvision_name: str
    debian_package: str


IDX_SOURCES = {
    "fashionmnist": IdxSource("FashionMNIST", "dataset-fashion-mnist"),
    "mnist": IdxSource("MNIST", "dataset-mnist"),
}


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def candidate_dirs(cfg: DictConfig) -> list[Path]:
    """The folders searched for a file-backed dataset, in order."""
    root = Path(cfg.root).expanduser()
    source = IDX_SOURCES[cfg.name]
    return [root, root / source.torchvision_name / "raw", *(Path(d) for d in cfg.system_dirs)]


def locate_idx_files(cfg: DictConfig) -> dict[str, Path] | None:
    """The first folder holding all four IDX files, as a map of role → path; None when none does."""
    for folder in candidate_dirs(cfg):
        found = {role: _find_file(folder, stem) for role, stem in IDX_FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def missing_data_message(cfg: DictConfig) -> str:
    source = IDX_SOURCES[cfg.name]
    tried = "\n".join(f"  - {d}" for d in candidate_dirs(cfg))
    return (
        f"dataset '{cfg.name}' not found. Looked for {', '.join(IDX_FILES.values())} (.gz or raw) in:\n{tried}\n"
        f"Fix: put the files in {cfg.root}, or install Debian's package "
        f"(apt-get install {source.debian_package}), or allow a download with dataset.download=true."
    )


def _download(cfg: DictConfig) -> None:
    import torchvision

    dataset_cls = getattr(torchvision.datasets, IDX_SOURCES[cfg.name].torchvision_name)
    try:
        for train in (True, False):
            dataset_cls(root=str(Path(cfg.root).expanduser()), train=train, download=True)
    except Exception as e:  # network errors come in many types; the message is what matters
        raise UserError(f"{missing_data_message(cfg)}\nThe download failed too: {e}") from None


def _idx_bundle(cfg: DictConfig, seed: int, class_names: tuple[str, ...]) -> DataBundle:
    files = locate_idx_files(cfg)
    if files is None and cfg.download:
        _download(cfg)
        files = locate_idx_files(cfg)
    if files is None:
        raise UserError(missing_data_message(cfg))
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
    return DataBundle(train, val, test, spec, image_normalizer(list(cfg.mean), list(cfg.std), cfg.normalize))


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


def availability(cfg: DictConfig) -> str:
    """One line for `trainctl doctor`: where a dataset would be read from, offline."""
    if cfg.name not in IDX_SOURCES:
        return "generated (always available)"
    files = locate_idx_files(cfg)
    if files is None:
        return f"not found offline (tried {', '.join(str(d) for d in candidate_dirs(cfg))})"
    return f"found in {files['train_images'].parent}"


def check_available(cfg: DictConfig) -> None:
    """Fail before any output when a file-backed dataset is absent and may not be downloaded."""
    if cfg.name in IDX_SOURCES and not cfg.download and locate_idx_files(cfg) is None:
        raise UserError(missing_data_message(cfg))


def build_dataset(cfg: DictConfig, seed: int) -> DataBundle:
    return DATASETS.get(cfg.name)(cfg, seed)
