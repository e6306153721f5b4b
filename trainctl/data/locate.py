"""Where a file-backed dataset's files are looked for, offline first, and what to say when they are not there.

Order: `dataset.root` (flat, or torchvision's `<root>/<Name>/raw/`, so an existing torchvision download is
reused), then `dataset.system_dirs` (Debian's `dataset-fashion-mnist` package installs
`/usr/share/datasets/fashion-mnist/`), and only then a download through torchvision, when `dataset.download=true`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from trainctl.errors import UserError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


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
