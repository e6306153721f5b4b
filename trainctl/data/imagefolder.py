"""`imagefolder`: a user's images in class subfolders (`<root>/train/<class>/*.png`, `test/`, optional `val/`).

Decoded once into uint8 tensors (then batched like MNIST) when the decoded size fits `memory_limit_mb`;
otherwise streamed through a DataLoader with worker processes, which decode and resize while the device trains.
Files that are not readable images are skipped with a warning (see `imagescan`); one that only fails when fully
decoded (a truncated JPEG) is dropped from its batch and named in a warning, in memory and streamed alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, Subset

from trainctl.data.catalog import DATASETS
from trainctl.data.imagescan import SplitFiles, check_classes, check_readable, list_entries, probe_all, scan_split
from trainctl.data.locate import blocked_ancestor, unreadable_folder_error
from trainctl.data.splits import (STREAM_AUGMENT_PER_BATCH, Batch, DataBundle, DataSpec, Split, Transform,
                                  epoch_generator, epoch_order)
from trainctl.data.user_transforms import transforms_from
from trainctl.errors import UserError

log = logging.getLogger("trainctl")
Item = tuple["torch.Tensor | None", int, str]  # (image or None when it failed to decode, label, path)


class DecodedImages(Dataset):
    """Image files as uint8 tensors [C, H, W] of one fixed size; an item that fails to decode is (None, label,
    path), and `collate_readable` drops it from its batch."""

    def __init__(self, samples: list[tuple[str, int]], size: tuple[int, int], grayscale: bool) -> None:
        self.samples, self.size, self.mode = samples, size, "L" if grayscale else "RGB"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                image = image.convert(self.mode).resize((self.size[1], self.size[0]), Image.BILINEAR)
                return pil_to_tensor(image), label, path
        except Exception:  # noqa: BLE001  (passed the header check, failed to decode: skip it, don't crash)
            return None, label, path


def collate_readable(items: list[Item]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A batch of the items that decoded, and the paths of those that did not."""
    kept = [(x, y) for x, y, _ in items if x is not None]
    failed = [path for x, _, path in items if x is None]
    xs = torch.stack([x for x, _ in kept]) if kept else torch.empty(0, dtype=torch.uint8)
    return xs, torch.tensor([y for _, y in kept], dtype=torch.long), failed


def warn_undecodable(paths: list[str]) -> None:
    if paths:
        shown = ", ".join(paths[:5]) + (f", and {len(paths) - 5} more" if len(paths) > 5 else "")
        log.warning("skipped %d image(s) that failed to decode: %s", len(paths), shown)


class StreamSplit:
    """A split read from disk batch by batch by DataLoader workers; same interface as `Split`."""

    def __init__(self, dataset: Dataset, num_workers: int, device: torch.device = torch.device("cpu")) -> None:
        self.dataset, self.num_workers, self.device = dataset, num_workers, device
        self.undecodable: set[str] = set()  # warned about once each, not once per epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def to(self, device: torch.device) -> "StreamSplit":
        return StreamSplit(self.dataset, self.num_workers, device)

    def subset(self, indices: torch.Tensor) -> "StreamSplit":
        return StreamSplit(Subset(self.dataset, indices.tolist()), self.num_workers, self.device)

    def labels(self) -> torch.Tensor:
        """Every sample's class, from the file list (no image is read)."""
        return _labels_of(self.dataset)

    def _loader(self, batch_size: int, indices: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = DataLoader(Subset(self.dataset, indices), batch_size=batch_size, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda", collate_fn=collate_readable)
        for x, y, failed in loader:
            warn_undecodable(sorted(set(failed) - self.undecodable))
            self.undecodable.update(failed)
            yield x, y

    def shuffled(self, batch_size: int, transform: Transform, seed: int, epoch: int, start_step: int = 0
                 ) -> Iterator[Batch]:
        order = epoch_order(len(self), seed, epoch, torch.device("cpu"))[start_step * batch_size:].tolist()
        for step, (x, y) in enumerate(self._loader(batch_size, order), start=start_step):
            if len(y) == 0:
                continue  # every image of this batch failed to decode
            # One generator per batch, seeded by (seed, epoch, step): a resume needs no replay of earlier draws.
            rng = epoch_generator(seed, epoch, self.device, STREAM_AUGMENT_PER_BATCH, step)
            yield transform(x.to(self.device, non_blocking=True), rng), y.to(self.device, non_blocking=True)

    def ordered(self, batch_size: int, transform: Transform) -> Iterator[Batch]:
        for x, y in self._loader(batch_size, list(range(len(self)))):
            if len(y):
                yield transform(x.to(self.device, non_blocking=True), None), y.to(self.device, non_blocking=True)


def _labels_of(dataset: Dataset) -> torch.Tensor:
    if isinstance(dataset, Subset):
        return _labels_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    return torch.tensor([label for _, label in dataset.samples], dtype=torch.long)


def _decode_all(dataset: Dataset, num_workers: int, folder: Path) -> Split:
    loader = DataLoader(dataset, batch_size=256, num_workers=num_workers, collate_fn=collate_readable)
    xs, ys, failed = zip(*loader)
    warn_undecodable([path for batch in failed for path in batch])
    kept = [x for x in xs if len(x)]
    if not kept:
        raise UserError(f"no image under {folder} could be decoded: put readable images (PNG, JPEG, ...) there.")
    return Split(torch.cat(kept), torch.cat(ys).long())


def _split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = min(max(1, round(n * fraction)), n - 1)
    return order[n_val:], order[:n_val]


def scan_folders(root: Path, num_workers: int) -> dict[str, SplitFiles]:
    """The checked files of train/, test/ and val/ (when present): refuses what cannot train a classifier."""
    try:
        exists = root.is_dir()
    except PermissionError:  # a folder on the way to root may not be searched
        raise unreadable_folder_error(root, "dataset.root", blocked_ancestor(root)) from None
    if not exists:
        raise UserError(f"dataset.root={root} does not exist: imagefolder expects "
                        f"{root}/train/<class>/<image> and {root}/test/<class>/<image>")
    present = {e.name for e in list_entries(root) if e.is_dir()}  # also fails clearly when root is unreadable
    for part in ("train", "test"):
        if part not in present:
            raise UserError(f"dataset.root={root} has no {part}/ folder: imagefolder expects "
                            f"{root}/train/<class>/<image> and {root}/test/<class>/<image>")
    splits = {part: scan_split(root / part) for part in ("train", "test", "val") if part in present}
    check_classes(splits["train"], [s for part, s in splits.items() if part != "train"])
    probe_all(list(splits.values()), num_workers)
    check_readable(root, list(splits.values()))
    return splits


def check_decoded_fits(cfg: DictConfig, needed: float) -> None:
    """Refuse before decoding when the images (all of them in memory, or one streamed batch of float pixels)
    would not fit in the free memory: `dataset.image_size=[100000,100000]` would otherwise swap or be killed."""
    from trainctl.data.memory import available_bytes, format_bytes

    available = available_bytes()
    if available is not None and needed > available:
        streamed = cfg.in_memory is False
        what = "in one streamed batch" if streamed else "decoded into memory"
        raise UserError(f"dataset.image_size={list(cfg.image_size)}: the images {what} would take "
                        f"{format_bytes(needed)} and {format_bytes(available)} is free. Fix: a smaller "
                        f"dataset.image_size{'' if streamed else ', or dataset.in_memory=false to stream them'}.")


@DATASETS.register("imagefolder")
def build_imagefolder(cfg: DictConfig, seed: int) -> DataBundle:
    """Your images: <root>/train/<class>/*.png (and test/, optional val/); streamed when too big for memory."""
    root = Path(cfg.root).expanduser()
    splits = scan_folders(root, cfg.num_workers)
    classes = splits["train"].classes
    label = {name: i for i, name in enumerate(classes)}
    size = (cfg.image_size[0], cfg.image_size[1])
    make = {part: DecodedImages([(path, label[name]) for path, name in s.files], size, cfg.grayscale)
            for part, s in splits.items()}
    train_all, test = make["train"], make["test"]
    if "val" in make:
        train, val = train_all, make["val"]
    else:
        if len(train_all) < 2:
            raise UserError(f"{root}/train has a single readable image: at least two are needed to hold one out "
                            "for validation (or add a val/ folder).")
        train_idx, val_idx = _split_indices(len(train_all), cfg.val_fraction, seed)
        train, val = Subset(train_all, train_idx), Subset(train_all, val_idx)
    channels = 1 if cfg.grayscale else 3
    decoded_mb = (len(train_all) + len(test)) * channels * size[0] * size[1] / 2**20
    in_memory = cfg.in_memory if cfg.in_memory is not None else decoded_mb <= cfg.memory_limit_mb
    check_decoded_fits(cfg, decoded_mb * 2**20 if in_memory else channels * size[0] * size[1] * 4 * 256)
    splits_out = [_decode_all(s, cfg.num_workers, root) if in_memory else StreamSplit(s, cfg.num_workers)
                  for s in (train, val, test)]
    spec = DataSpec((channels, *size), len(classes), "classification", classes)
    return DataBundle(*splits_out, spec, *transforms_from(cfg))
