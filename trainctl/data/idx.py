"""MNIST and Fashion-MNIST: the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), `.gz` or raw, and their datasets.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per dimension and the
data in C order, big-endian. We decode the whole file at once into a tensor: no per-sample work, ever.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from omegaconf import DictConfig

from trainctl.data.catalog import DATASETS
from trainctl.data.locate import find_or_download, unreadable_file_error
from trainctl.data.splits import DataBundle, DataSpec, Split, check_labels, split_off_validation
from trainctl.data.user_transforms import transforms_from
from trainctl.errors import UserError

# IDX type code → numpy dtype (big-endian as stored on disk).
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except PermissionError:
        raise unreadable_file_error(path) from None
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read {path}: {e}. Delete the file and fetch it again.") from None


_cache: dict[tuple[str, int, int], torch.Tensor] = {}


def read_idx(path: Path) -> torch.Tensor:
    """Decode one IDX file into a tensor of its stored shape and type.

    Decoded files are cached per process (keyed by path, size and mtime), so the trials of a sweep run in one
    process decode Fashion-MNIST once instead of once per trial. Callers must not modify the tensor in place.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _cache:
        _cache[key] = _decode(path)
    return _cache[key]


def _decode(path: Path) -> torch.Tensor:
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise UserError(f"{path} is not an IDX file (bad header). Delete it and fetch the dataset again.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated (header cut short). Delete it and fetch the dataset again.")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise UserError(
            f"{path} holds {len(raw) - header} data bytes but its header {dims} needs {expected}: "
            "the file is truncated or corrupt. Delete it and fetch the dataset again."
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def write_idx(path: Path, tensor: torch.Tensor) -> None:
    """Write a tensor as an IDX file (gzip when the name ends in .gz): used by tests and tools."""
    array = tensor.cpu().numpy()
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(np.dtype(IDX_TYPES[code])).tobytes()
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


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
        if images.shape[0] < (2 if split == "train" else 1):  # training also holds validation out
            raise UserError(f"{files[f'{split}_images']} holds {images.shape[0]} image(s): too few to "
                            f"{'train and validate on' if split == 'train' else 'test on'}. The file is "
                            "truncated or a placeholder: fetch the dataset again.")
        if images.dtype != torch.uint8:
            raise UserError(f"{files[f'{split}_images']} holds {images.dtype} pixels, not bytes (uint8) as "
                            f"{cfg.name}'s images are: the file is corrupt or from another dataset. "
                            "Fetch the dataset again.")
        check_labels(files[f"{split}_labels"], labels, len(class_names), cfg.name)
    train_size, test_size = tuple(tensors["train_images"].shape[1:]), tuple(tensors["test_images"].shape[1:])
    if train_size != test_size:
        raise UserError(f"{files['test_images']} holds {test_size[0]}x{test_size[1]} images but "
                        f"{files['train_images']} holds {train_size[0]}x{train_size[1]}: one model cannot take "
                        "both. The files come from different datasets; fetch the dataset again.")
    full_train = Split(tensors["train_images"].unsqueeze(1), tensors["train_labels"].long())
    train, val = split_off_validation(full_train, cfg.val_fraction, seed)
    test = Split(tensors["test_images"].unsqueeze(1), tensors["test_labels"].long())
    spec = DataSpec(tuple(full_train.x.shape[1:]), len(class_names), "classification", class_names)
    return DataBundle(train, val, test, spec, *transforms_from(cfg))


@DATASETS.register("fashionmnist")
def build_fashionmnist(cfg: DictConfig, seed: int) -> DataBundle:
    """Fashion-MNIST: 28x28 grey clothing images, 10 classes (IDX files, found offline)."""
    return _idx_bundle(cfg, seed, FASHION_CLASSES)


@DATASETS.register("mnist")
def build_mnist(cfg: DictConfig, seed: int) -> DataBundle:
    """MNIST: 28x28 grey handwritten digits, 10 classes (IDX files, found offline)."""
    return _idx_bundle(cfg, seed, tuple(str(d) for d in range(10)))
