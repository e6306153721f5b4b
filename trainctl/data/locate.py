"""Where a file-backed dataset's files are looked for, offline first, and what to say when they are not there.

Order: `dataset.root` (flat, or torchvision's `<root>/<Name>/raw/`, so an existing torchvision download is
reused), then `dataset.system_dirs` (Debian's `dataset-fashion-mnist` package installs
`/usr/share/datasets/fashion-mnist/`), and only then a download through torchvision, when `dataset.download=true`.
"""

from __future__ import annotations

import os
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
    files_from: str = ""  # where the files can be fetched by hand, said after "put the files in <root>"
    other_fix: str = ""  # a fix besides putting the files in root and torchvision's download


# Debian packages Fashion-MNIST (`dataset-fashion-mnist`) but not MNIST (`apt-cache search mnist` lists only
# the former), so MNIST's files come from torchvision's download or from a mirror of the original IDX files.
FILE_SOURCES = {
    "fashionmnist": FileSource(IDX_FILES, ("FashionMNIST/raw",), "FashionMNIST",
                               other_fix="install Debian's package (apt-get install dataset-fashion-mnist)"),
    "mnist": FileSource(IDX_FILES, ("MNIST/raw",), "MNIST",
                        files_from=" (the four .gz files from a mirror of http://yann.lecun.com/exdb/mnist/, e.g. "
                                   "https://ossci-datasets.s3.amazonaws.com/mnist/)"),
    "cifar10": FileSource(CIFAR_FILES, ("cifar-10-batches-py",), "CIFAR10",
                          other_fix="unpack cifar-10-python.tar.gz there (it holds cifar-10-batches-py/)"),
}


def unreadable_folder_error(folder: Path, key: str, culprit: Path | None = None) -> UserError:
    """The message for a data folder (from config key `key`) that exists but may not be read: permissions on
    it, or on `culprit`, a folder on the way to it."""
    culprit = culprit or folder
    on = "" if culprit == folder else f" on {culprit}"
    chmod = f"chmod -R a+rX {folder}" if culprit == folder else f"chmod a+rX {culprit}"
    return UserError(f"cannot read {folder} (from {key}): permission denied{on}. "
                     f"Fix: make it readable ({chmod}) or point {key} at a copy you can read.")


def unreadable_file_error(path: Path) -> UserError:
    return UserError(f"cannot read {path}: permission denied. Fix: make it readable (chmod a+r {path}).")


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


def _key_of(folder: Path, cfg: DictConfig) -> str:
    return "dataset.system_dirs" if str(folder) in [str(Path(d)) for d in cfg.system_dirs] else "dataset.root"


def locate_files(cfg: DictConfig) -> dict[str, Path] | None:
    """The first folder holding all of a dataset's files, as a map of role → path; None when none does.

    A folder that exists but cannot be searched (permissions) is an error, not a miss: it may hold the files,
    and skipping it would silently read another copy (or report the data missing while it is right there)."""
    for folder in candidate_dirs(cfg):
        try:
            found = {role: _find_file(folder, stem) for role, stem in FILE_SOURCES[cfg.name].files.items()}
        except PermissionError:
            raise unreadable_folder_error(folder, _key_of(folder, cfg), blocked_ancestor(folder)) from None
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def blocked_ancestor(folder: Path) -> Path:
    """The outermost folder on the way to `folder` that may not be searched: the one whose permissions to fix."""
    chain = [*reversed(folder.parents), folder]
    for parent, child in zip(chain, chain[1:]):
        try:
            os.stat(child)
        except PermissionError:
            return parent
        except OSError:
            break
    return folder


def missing_data_message(cfg: DictConfig) -> str:
    source = FILE_SOURCES[cfg.name]
    tried = "\n".join(f"  - {d}" for d in candidate_dirs(cfg))
    fixes = [f"put the files in {cfg.root}{source.files_from}", *filter(None, [source.other_fix]),
             "allow a download with dataset.download=true (torchvision fetches them into dataset.root)"]
    return (
        f"dataset '{cfg.name}' not found. Looked for {', '.join(source.files.values())} (.gz or raw) in:\n{tried}\n"
        f"Fix: {', or '.join(fixes)}."
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
        try:
            there = Path(cfg.root, "train").expanduser().is_dir()
        except PermissionError:
            return f"your images under {cfg.root} (cannot be read: permission denied)"
        return f"your images under {cfg.root}" + ("" if there else " (not there)")
    if cfg.name not in FILE_SOURCES:
        return "generated (always available)"
    try:
        files = locate_files(cfg)
    except UserError as e:
        return str(e)
    if files is None:
        return f"not found offline (tried {', '.join(str(d) for d in candidate_dirs(cfg))})"
    return f"found in {next(iter(files.values())).parent}"


def check_available(cfg: DictConfig) -> None:
    """Fail before any output when a file-backed dataset is absent (or unreadable) and may not be downloaded,
    or when a generated one would not fit in memory."""
    from trainctl.data.memory import check_generated_fits

    check_generated_fits(cfg)
    if cfg.get("name") in FILE_SOURCES and not cfg.download and locate_files(cfg) is None:
        raise UserError(missing_data_message(cfg))
