"""Datasets as the loop sees them: splits that batch themselves, on the training device.

Why: the quickstart's `DataLoader(FashionMNIST(transform=ToTensor()))` builds a PIL image and a tensor per
sample in Python. Here a split that fits in memory is one uint8 tensor on the device; a batch is one gather
with an index slice of a seeded on-device permutation, and conversion, normalisation and augmentation run on
the whole batch. Only datasets too large for memory (`imagefolder`) stream through a DataLoader with workers.

Every random choice of an epoch (order, crops, flips) comes from generators seeded by (seed, epoch), so a
resumed run replays exactly the batches an uninterrupted one would see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import torch

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


def epoch_generator(seed: int, epoch: int, device: torch.device, stream: int = 0) -> torch.Generator:
    """A generator for one epoch's randomness; `stream` separates the shuffle from augmentation."""
    return torch.Generator(device=device).manual_seed(seed * 100_003 + epoch * 101 + stream + 1)


def epoch_order(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The shuffle of one epoch, a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch, device), device=device)


class SplitLike(Protocol):
    def __len__(self) -> int: ...

    def shuffled(self, batch_size: int, transform: Transform, seed: int, epoch: int, start_step: int = 0
                 ) -> Iterator[Batch]: ...

    def ordered(self, batch_size: int, transform: Transform) -> Iterator[Batch]: ...


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

    def shuffled(self, batch_size: int, transform: Transform, seed: int, epoch: int, start_step: int = 0
                 ) -> Iterator[Batch]:
        """Shuffled batches by index gather; `start_step` skips batches already trained (mid-epoch resume)."""
        order = epoch_order(len(self), seed, epoch, self.device)
        augment_rng = epoch_generator(seed, epoch, self.device, stream=1)
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
        moved = [s.to(device) for s in (self.train, self.val, self.test)]
        return DataBundle(*moved, self.spec, self.train_transform, self.eval_transform)


def image_transforms(mean: list[float], std: list[float], normalize: bool, crop_padding: int = 0,
                     hflip: bool = False) -> tuple[Transform, Transform]:
    """(train, eval) transforms for uint8 [N, C, H, W] images: augment (train only), scale, standardise."""
    mean_t = torch.tensor(mean).view(1, -1, 1, 1)
    std_t = torch.tensor(std).view(1, -1, 1, 1)

    def scale(x: torch.Tensor) -> torch.Tensor:
        out = x.float().div_(255.0)
        return out.sub_(mean_t.to(x.device)).div_(std_t.to(x.device)) if normalize else out

    def train(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if crop_padding > 0:
            x = random_crop(x, crop_padding, generator)
        if hflip:
            x = random_hflip(x, generator)
        return scale(x)

    return train, lambda x, generator=None: scale(x)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None) -> torch.Tensor:
    """Per-image random crop of the zero-padded batch back to its size, as one gather (no Python loop)."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=x.device)
    rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]


def random_hflip(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def split_off_validation(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out `fraction` of a split for validation; the choice depends on the seed only."""
    n = len(split)
    n_val = min(max(1, round(n * fraction)), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return Split(split.x[train_idx], split.y[train_idx]), Split(split.x[val_idx], split.y[val_idx])


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)
