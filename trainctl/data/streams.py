"""`dataset=sine dataset.streams=S`: one long sin→cos signal per stream, cut into consecutive windows, as the
sin→cos tutorial feeds its RNN window after window. Window t of stream s is sample t·S + s, so batches of S
samples taken in order hold one window of every stream, each continuing the window its row held in the batch
before: what `model.stateful=true` needs to carry the hidden state from batch to batch.

The training windows are never shuffled (`InOrder`); validation is each stream's last windows (in time, after
the training ones), the test split fresh streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from trainctl.data.splits import AUGMENT_STREAM, Batch, Split, Transform, epoch_generator


@dataclass
class InOrder(Split):
    """A split whose training batches come in stored order, every epoch (no shuffle), of `streams` rows each."""

    streams: int = 1

    def to(self, device: torch.device) -> "InOrder":
        return InOrder(self.x.to(device), self.y.to(device), self.streams)

    def shuffled(self, batch_size: int, transform: Transform, seed: int, epoch: int, start_step: int = 0
                 ) -> Iterator[Batch]:
        augment_rng = epoch_generator(seed, epoch, self.device, AUGMENT_STREAM)
        for start in range(0, len(self), batch_size):
            x = transform(self.x[start : start + batch_size], augment_rng)
            if start >= start_step * batch_size:
                yield x, self.y[start : start + batch_size]


def sine_target(t: torch.Tensor, dt: torch.Tensor, target: str) -> torch.Tensor:
    """The target of input sin(t): cos(t), or `next`: sin one time step `dt` later (next-value prediction)."""
    return torch.cos(t) if target == "cos" else torch.sin(t + dt)


def draw_frequencies(shape: tuple[int, ...], frequencies: tuple[float, float],
                     generator: torch.Generator) -> torch.Tensor:
    """Uniform in [low, high) (at [0.5, 1.5) the same numbers as `0.5 + rand`, so older runs regenerate exactly)."""
    low, high = frequencies
    return low + (high - low) * torch.rand(*shape, generator=generator)


def sine_streams(streams: int, windows: int, length: int, generator: torch.Generator, target: str = "cos",
                 frequencies: tuple[float, float] = (0.5, 1.5)) -> tuple[torch.Tensor, ...]:
    """[windows·streams, length, 1] inputs sin(t) and their targets, window t of stream s at t·streams + s."""
    phase = torch.rand(1, streams, 1, generator=generator) * 2 * torch.pi
    frequency = draw_frequencies((1, streams, 1), frequencies, generator)
    step = 2 * torch.pi / length  # one window spans 2π at frequency 1, as a sine sequence does
    t = phase + frequency * step * torch.arange(windows * length, dtype=torch.float32).view(windows, 1, length)
    return torch.sin(t).reshape(-1, length, 1), sine_target(t, frequency * step, target).reshape(-1, length, 1)


def stream_splits(streams: int, n_train: int, n_test: int, length: int, val_fraction: float,
                  generator: torch.Generator, target: str = "cos", frequencies: tuple[float, float] = (0.5, 1.5)
                  ) -> tuple[InOrder, Split, Split]:
    windows = max(n_train // streams, 2)
    val_windows = min(max(1, round(windows * val_fraction)), windows - 1)
    x, y = sine_streams(streams, windows, length, generator, target, frequencies)
    cut = (windows - val_windows) * streams
    test = sine_streams(streams, max(n_test // streams, 1), length, generator, target, frequencies)
    return InOrder(x[:cut], y[:cut], streams), Split(x[cut:], y[cut:]), Split(*test)
