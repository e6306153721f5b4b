"""Datasets as the loop sees them: splits that batch themselves, on the training device.

Why: the quickstart's `DataLoader(FashionMNIST(transform=ToTensor()))` builds a PIL image and a tensor per
sample in Python. Here a split that fits in memory is one uint8 tensor on the device; a batch is one gather
with an index slice of a seeded on-device permutation, and conversion, normalisation and augmentation run on
the whole batch. Only datasets too large for memory (`imagefolder`) stream through a DataLoader with workers.

Every random choice of an epoch (order, crops, flips) comes from generators seeded by (seed, epoch), so a
resumed run replays exactly the batches an uninterrupted one would see.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from trainctl.errors import UserError

Batch = tuple[torch.Tensor, torch.Tensor]
Transform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about the data: it never comes from the user."""

    input_shape: tuple[int, ...]
    num_classes: int = 0  # 0 for regression
    task: str = "classification"
    class_names: tuple[str, ...] = ()
    target_shape: tuple[int, ...] = ()  # per-sample target shape, for regression


def identity(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return x


SHUFFLE_STREAM = 0  # the order of an epoch's samples
AUGMENT_STREAM = 1  # crops and flips of an in-memory split
STREAM_AUGMENT_PER_BATCH = 2  # streamed splits: one generator per batch, keyed by the batch index too
TRAIN_SUBSET_STREAM = 3  # which training samples dataset.train_size keeps


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for the randomness named by `key` (a stream, an epoch, maybe a batch) under `seed`.

    Why a seed sequence: a hand-made mix such as `seed * 100_003 + epoch * 101 + stream` maps different
    (epoch, stream) pairs onto the same number, so two supposedly independent generators replay the same draws.
    numpy's SeedSequence hashes the whole key, so distinct keys give independent seeds.
    """
    words = np.random.SeedSequence(seed, spawn_key=tuple(key)).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31 | int(words[1]) >> 1) & (2**63 - 1)


def epoch_generator(seed: int, epoch: int, device: torch.device, stream: int = SHUFFLE_STREAM,
                    *key: int) -> torch.Generator:
    """A generator for one epoch's randomness of one stream (shuffle, augmentation, ...)."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stream, epoch, *key))


def epoch_order(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The shuffle of one epoch, a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch, device), device=device)


class SplitLike(Protocol):
    def __len__(self) -> int: ...

    def shuffled(self, batch_size: int, transform: Transform, seed: int, epoch: int, start_step: int = 0
                 ) -> Iterator[Batch]: ...

    def ordered(self, batch_size: int, transform: Transform) -> Iterator[Batch]: ...

    def subset(self, indices: torch.Tensor) -> "SplitLike": ...


@dataclass
class Split:
    """A split held as two tensors (inputs, targets) on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, indices: torch.Tensor) -> "Split":
        return Split(self.x[indices], self.y[indices])

    def labels(self) -> torch.Tensor:
        return self.y.cpu()

    def shuffled(self, batch_size: int, transform: Transform, seed: int, epoch: int, start_step: int = 0
                 ) -> Iterator[Batch]:
        """Shuffled batches by index gather; `start_step` skips batches already trained (mid-epoch resume)."""
        order = epoch_order(len(self), seed, epoch, self.device)
        augment_rng = epoch_generator(seed, epoch, self.device, AUGMENT_STREAM)
        for start in range(0, len(self), batch_size):
            idx = order[start : start + batch_size]
            x = self.x[idx]
            x = transform(x, augment_rng)  # drawn even for skipped batches, so a resume sees the same crops
            if start >= start_step * batch_size:
                yield x, self.y[idx]

    def ordered(self, batch_size: int, transform: Transform) -> Iterator[Batch]:
        """Batches in order, as views (no gather), without augmentation."""
        for start in range(0, len(self), batch_size):
            yield transform(self.x[start : start + batch_size], None), self.y[start : start + batch_size]


@dataclass
class DataBundle:
    train: SplitLike
    val: SplitLike
    test: SplitLike
    spec: DataSpec
    train_transform: Transform = field(default=identity)  # augmentation + normalisation, per batch, on device
    eval_transform: Transform = field(default=identity)

    def to(self, device: torch.device) -> "DataBundle":
        """The bundle with its in-memory splits on `device`; a device too small for them is a UserError."""
        try:
            moved = [s.to(device) for s in (self.train, self.val, self.test)]
        except (MemoryError, RuntimeError) as e:
            from trainctl.data.memory import format_bytes, is_out_of_memory

            if not is_out_of_memory(e):
                raise
            size = sum(s.x.nbytes + s.y.nbytes for s in (self.train, self.val, self.test) if isinstance(s, Split))
            raise UserError(
                f"the dataset ({format_bytes(size)}) does not fit in the memory of {device}: "
                f"{(str(e).strip().splitlines() or [type(e).__name__])[0]}. Fix: use less data (lower "
                "dataset.train_size, or dataset.n_train / dataset.n_test for generated sets; dataset.image_size, or "
                "dataset.in_memory=false, for image folders) or train on another device (device=cpu)."
            ) from None
        return DataBundle(*moved, self.spec, self.train_transform, self.eval_transform)


def split_off_validation(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out `fraction` of a split for validation; the choice depends on the seed only."""
    n = len(split)
    n_val = min(max(1, round(n * fraction)), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return Split(split.x[train_idx], split.y[train_idx]), Split(split.x[val_idx], split.y[val_idx])


def take_train_subset(data: DataBundle, size: int | None, seed: int, per_class: int | None = None) -> DataBundle:
    """The bundle with at most `per_class` training samples of each class (`dataset.train_per_class`), then at
    most `size` in all (`dataset.train_size`), drawn by the seed; None keeps all.

    Done after the validation split is held out, so validation stays the same whatever the size. Both take the
    first samples of one seeded permutation, so the subsets of one seed are nested (100 samples are among the
    200): a learning curve adds data rather than swapping it.
    """
    if size is None and per_class is None:
        return data
    n = len(data.train)
    if size is not None and size > n:
        raise UserError(f"dataset.train_size={size} is more than the {n} samples of the training split "
                        f"(validation not counted): choose at most {n}, or null for all of them.")
    key = "dataset.train_size" if per_class is None else "dataset.train_per_class"
    if not hasattr(data.train, "subset"):
        raise UserError(f"{key} needs a training split with a subset() method; this dataset's "
                        f"{type(data.train).__name__} has none: leave {key} null.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, TRAIN_SUBSET_STREAM)))
    if per_class is not None:
        if data.spec.task != "classification" or not hasattr(data.train, "labels"):
            raise UserError("dataset.train_per_class needs a classification dataset with class labels: "
                            "leave it null, or use dataset.train_size.")
        order = order[rank_within_class(data.train.labels()[order]) < per_class]
    return replace(data, train=data.train.subset(order[:size] if size is not None else order))


def rank_within_class(labels: torch.Tensor) -> torch.Tensor:
    """For each position, how many earlier positions hold the same label (0 for a class's first sample)."""
    by_class, where = torch.sort(labels, stable=True)  # grouped by class, in order within each class
    counts = torch.bincount(by_class)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(where)
    rank[where] = torch.arange(len(labels)) - starts[by_class]
    return rank


def check_labels(path: Path | str, labels: torch.Tensor, num_classes: int, name: str) -> None:
    """Every label must name one of the dataset's classes: a stray 255 would otherwise silently make a
    256-class model, and float labels would be truncated to integers."""
    if labels.is_floating_point():
        raise UserError(f"{path} holds {labels.dtype} labels, not integer class numbers: "
                        "the file is corrupt or from another dataset. Fetch the dataset again.")
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        values = torch.unique(labels[bad]).tolist()
        shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        raise UserError(
            f"{path} holds {int(bad.sum())} label(s) outside {name}'s {num_classes} classes (valid: 0 to "
            f"{num_classes - 1}); bad value(s): {shown}. The file is corrupt or from another dataset: "
            "fetch the dataset again."
        )


def ceil_div(n: int, batch_size: int) -> int:
    """Batches needed for n samples: the last one may be short."""
    return -(-n // batch_size)
