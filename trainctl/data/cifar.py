"""CIFAR-10 from its standard python-pickle batches (`cifar-10-batches-py/data_batch_1..5`, `test_batch`).

The batches are pickles, and a pickle can run code, so they are read with an unpickler that only rebuilds
numpy arrays: a tampered file fails with a clear error instead of executing anything.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from trainctl.data.catalog import DATASETS
from trainctl.data.locate import find_or_download, unreadable_file_error
from trainctl.data.splits import DataBundle, DataSpec, Split, check_labels, split_off_validation
from trainctl.data.user_transforms import transforms_from
from trainctl.errors import UserError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> Split:
    """One batch file → uint8 images [N, 3, 32, 32] and int64 labels."""
    try:
        with open(path, "rb") as f:
            batch = ArrayOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = batch[b"labels"]
    except PermissionError:
        raise unreadable_file_error(path) from None
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, OSError) as e:
        raise UserError(f"{path} is not a CIFAR-10 batch ({e}). Delete it and fetch the dataset again.") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != data.shape[0]:
        raise UserError(f"{path} holds data of shape {data.shape} and {len(labels)} labels, "
                        "not N x 3072 with one label each: fetch the dataset again.")
    try:
        label_tensor = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"{path} holds labels that are not a list of numbers ({e}): fetch the dataset again.") from None
    check_labels(path, label_tensor, len(CIFAR10_CLASSES), "cifar10")
    return Split(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), label_tensor.long())


@DATASETS.register("cifar10")
def build_cifar10(cfg: DictConfig, seed: int) -> DataBundle:
    """CIFAR-10: 32x32 colour images, 10 classes (python-pickle batches, kept in memory as uint8)."""
    files = find_or_download(cfg)
    parts = [read_cifar_batch(files[f"data_batch_{i}"]) for i in range(1, 6)]
    full = Split(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))
    train, val = split_off_validation(full, cfg.val_fraction, seed)
    test = read_cifar_batch(files["test_batch"])
    spec = DataSpec((3, 32, 32), 10, "classification", CIFAR10_CLASSES)
    return DataBundle(train, val, test, spec, *transforms_from(cfg))
