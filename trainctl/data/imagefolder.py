"""`imagefolder`: a user's images in class subfolders (`<root>/train/<class>/*.png`, `test/`, optional `val/`).

Decoded once into uint8 tensors (then batched like MNIST) when the decoded size fits `memory_limit_mb`;
otherwise streamed through a DataLoader with worker processes, which decode and resize while the device trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, Subset

from trainctl.data.catalog import DATASETS, transforms_from
from trainctl.data.splits import (STREAM_AUGMENT_PER_BATCH, Batch, DataBundle, DataSpec, Split, Transform,
                                  epoch_generator, epoch_order)
from trainctl.errors import UserError


class DecodedImages(Dataset):
    """An ImageFolder whose items are uint8 tensors [C, H, W] of one fixed size."""

    def __init__(self, folder: Path, size: tuple[int, int], grayscale: bool) -> None:
        from torchvision.datasets import ImageFolder

        self.folder = ImageFolder(str(folder))
        self.size, self.mode = size, "L" if grayscale else "RGB"

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        path, label = self.folder.samples[index]
        with Image.open(path) as image:
            image = image.convert(self.mode).resize((self.size[1], self.size[0]), Image.BILINEAR)
            return pil_to_tensor(image), label


class StreamSplit:
    """A split read from disk batch by batch by DataLoader workers; same interface as `Split`."""

    def __init__(self, dataset: Dataset, num_workers: int, device: torch.device = torch.device("cpu")) -> None:
        self.dataset, self.num_workers, self.device = dataset, num_workers, device

    def __len__(self) -> int:
        return len(self.dataset)

    def to(self, device: torch.device) -> "StreamSplit":
        return StreamSplit(self.dataset, self.num_workers, device)

    def _loader(self, batch_size: int, indices: list[int]) -> DataLoader:
        return DataLoader(Subset(self.dataset, indices), batch_size=batch_size, num_workers=self.num_workers,
                          pin_memory=self.device.type == "cuda")

    def shuffled(self, batch_size: int, transform: Transform, seed: int, epoch: int, start_step: int = 0
                 ) -> Iterator[Batch]:
        order = epoch_order(len(self), seed, epoch, torch.device("cpu"))[start_step * batch_size:].tolist()
        for step, (x, y) in enumerate(self._loader(batch_size, order), start=start_step):
            # One generator per batch, seeded by (seed, epoch, step): a resume needs no replay of earlier draws.
            rng = epoch_generator(seed, epoch, self.device, STREAM_AUGMENT_PER_BATCH, step)
            yield transform(x.to(self.device, non_blocking=True), rng), y.to(self.device, non_blocking=True)

    def ordered(self, batch_size: int, transform: Transform) -> Iterator[Batch]:
        for x, y in self._loader(batch_size, list(range(len(self)))):
            yield transform(x.to(self.device, non_blocking=True), None), y.to(self.device, non_blocking=True)


def _decode_all(dataset: Dataset, num_workers: int) -> Split:
    loader = DataLoader(dataset, batch_size=256, num_workers=num_workers)
    xs, ys = zip(*loader)
    return Split(torch.cat(xs), torch.cat(ys).long())


def _split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = min(max(1, round(n * fraction)), n - 1)
    return order[n_val:], order[:n_val]


@DATASETS.register("imagefolder")
def build_imagefolder(cfg: DictConfig, seed: int) -> DataBundle:
    """Your images: <root>/train/<class>/*.png (and test/, optional val/); streamed when too big for memory."""
    root = Path(cfg.root).expanduser()
    for part in ("train", "test"):
        if not (root / part).is_dir():
            raise UserError(f"dataset.root={root} has no {part}/ folder: imagefolder expects "
                            f"{root}/train/<class>/<image> and {root}/test/<class>/<image>")
    size = (cfg.image_size[0], cfg.image_size[1])
    make = lambda part: DecodedImages(root / part, size, cfg.grayscale)  # noqa: E731
    train_all, test = make("train"), make("test")
    if (root / "val").is_dir():
        train, val = train_all, make("val")
    else:
        train_idx, val_idx = _split_indices(len(train_all), cfg.val_fraction, seed)
        train, val = Subset(train_all, train_idx), Subset(train_all, val_idx)
    channels = 1 if cfg.grayscale else 3
    decoded_mb = (len(train_all) + len(test)) * channels * size[0] * size[1] / 2**20
    in_memory = cfg.in_memory if cfg.in_memory is not None else decoded_mb <= cfg.memory_limit_mb
    splits = [_decode_all(s, cfg.num_workers) if in_memory else StreamSplit(s, cfg.num_workers)
              for s in (train, val, test)]
    classes = tuple(train_all.folder.classes)
    spec = DataSpec((channels, *size), len(classes), "classification", classes)
    return DataBundle(*splits, spec, *transforms_from(cfg))
