"""Batched transforms on uint8 image tensors, run on the training device: augmentation, scaling, normalisation.

A transform takes a whole batch `[N, C, H, W]` and an optional generator (None in evaluation), so augmentation
costs a few tensor ops per batch and no per-sample Python.
"""

from __future__ import annotations

import torch

from trainctl.data.splits import Transform


def image_transforms(mean: list[float], std: list[float], normalize: bool, crop_padding: int = 0,
                     hflip: bool = False) -> tuple[Transform, Transform]:
    """(train, eval) transforms for uint8 [N, C, H, W] images: augment (train only), scale, standardise."""
    on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Copied to each device once: a copy from host memory per batch would make the host wait for the GPU.
        # The first copy happens inside the first training step, where trainer.sync_debug=error refuses a
        # blocking copy (torch.tensor(..., device=cuda) is one): hence a non-blocking copy of a host tensor.
        if device not in on_device:
            on_device[device] = (torch.tensor(mean).view(1, -1, 1, 1).to(device, non_blocking=True),
                                 torch.tensor(std).view(1, -1, 1, 1).to(device, non_blocking=True))
        return on_device[device]

    def scale(x: torch.Tensor) -> torch.Tensor:
        out = x.float().div_(255.0)
        if not normalize:
            return out
        mean_t, std_t = mean_std(x.device)
        return out.sub_(mean_t).div_(std_t)

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
