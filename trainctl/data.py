"""In-memory datasets kept on the training device, batched by index slicing.

Why: the quickstart's `DataLoader(FashionMNIST(transform=ToTensor()))` builds a PIL image and a tensor per
sample in Python; here the whole split is one uint8 tensor on the device, a batch is one gather with an index
slice of a seeded on-device permutation, and the float conversion and normalisation run on the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about the data: it never comes from the user."""

    input_shape: tuple[int, ...]
    num_classes: int
    task: str = "classification"
    class_names: tuple[str, ...] = ()


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass
class DataBundle:
    train: Split
    val: Split
    test: Split
    spec: DataSpec
    transform: Transform = field(default=_identity)  # uint8 → normalised float, applied per batch on the device

    def to(self, device: torch.device) -> "DataBundle":
        return DataBundle(self.train.to(device), self.val.to(device), self.test.to(device), self.spec, self.transform)


def image_normalizer(mean: list[float], std: list[float], normalize: bool) -> Transform:
    """uint8 [N, C, H, W] → float32 in [0, 1], then standardised per channel when `normalize`."""
    mean_t = torch.tensor(mean).view(1, -1, 1, 1)
    std_t = torch.tensor(std).view(1, -1, 1, 1)
    cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def transform(x: torch.Tensor) -> torch.Tensor:
        out = x.float().div_(255.0)
        if not normalize:
            return out
        if x.device not in cache:
            cache[x.device] = (mean_t.to(x.device), std_t.to(x.device))
        m, s = cache[x.device]
        return out.sub_(m).div_(s)

    return transform


def split_off_validation(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out `fraction` of a split for validation; the choice depends on the seed only."""
    n = len(split)
    n_val = min(max(1, round(n * fraction)), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return Split(split.x[train_idx], split.y[train_idx]), Split(split.x[val_idx], split.y[val_idx])


def epoch_order(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The shuffle of one epoch, a pure function of (seed, epoch): a resumed run sees the same order."""
    generator = torch.Generator(device=device).manual_seed(seed * 100_003 + epoch + 1)
    return torch.randperm(n, generator=generator, device=device)


def train_batches(
    split: Split, batch_size: int, transform: Transform, order: torch.Tensor, start_step: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches by index gather; `start_step` skips batches already trained (mid-epoch resume)."""
    for start in range(start_step * batch_size, len(split), batch_size):
        idx = order[start : start + batch_size]
        yield transform(split.x[idx]), split.y[idx]


def eval_batches(split: Split, batch_size: int, transform: Transform) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches in order, as views (no gather)."""
    for start in range(0, len(split), batch_size):
        yield transform(split.x[start : start + batch_size]), split.y[start : start + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)
