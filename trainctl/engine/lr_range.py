"""The learning-rate range test (Smith, "Cyclical Learning Rates", 2017): train with a learning rate that grows
exponentially from `start_lr` to `end_lr`, one step per batch, record the smoothed loss, stop once it
diverges, and suggest the rate where the loss fell fastest.

The loss stays on the device between checks: it is read every `CHECK_EVERY` steps, one host sync per block,
so the test runs at training speed. What it trains is thrown away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn

from trainctl.data.splits import Batch, SplitLike, Transform
from trainctl.engine.step import StepSettings
from trainctl.errors import UserError

CHECK_EVERY = 10  # steps between reads of the loss (each read is a host sync)
MEMORY = 0.025  # of the loss's moving averages, as a share of the steps: the same span of lr at any step count
SKIPPED = 0.05  # share of the curve's start left out of the suggestion
RULE = "steepest descent of the smoothed loss against log(lr), before its minimum"


@dataclass(frozen=True)
class RangeOptions:
    """What `trainctl lr-find lr_find.KEY=VALUE` sets."""

    start_lr: float = 1e-7
    end_lr: float = 10.0
    steps: int = 200
    diverge: float = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum

    def check(self) -> None:
        if not (math.isfinite(self.start_lr) and math.isfinite(self.end_lr)) or min(self.start_lr, self.end_lr) <= 0:
            raise UserError(f"lr_find.start_lr={self.start_lr:g} and lr_find.end_lr={self.end_lr:g} must both be "
                            "positive numbers, e.g. lr_find.start_lr=1e-7 lr_find.end_lr=10")
        if self.start_lr >= self.end_lr:
            raise UserError(f"lr_find.start_lr={self.start_lr:g} must be below lr_find.end_lr={self.end_lr:g}: "
                            "the learning rate grows from the first to the second")
        if self.steps < 10:
            raise UserError(f"lr_find.steps={self.steps} is too few to draw a curve: use at least 10 "
                            "(the default is 200)")
        if self.steps > 100_000:
            raise UserError(f"lr_find.steps={self.steps} is more than a range test needs (at most 100000; the "
                            "default 200 draws a full curve)")
        if self.diverge <= 1:
            raise UserError(f"lr_find.diverge={self.diverge:g} must be above 1: the test stops when the smoothed "
                            "loss exceeds that multiple of its minimum")

    def smoothing(self) -> float:
        """The moving averages' coefficient: a memory of MEMORY x steps (5 steps of 200)."""
        return 1 - 1 / max(2.0, MEMORY * self.steps)

    def rates(self) -> list[float]:
        """`steps` rates, evenly spaced on a log scale from start_lr to end_lr."""
        ratio = self.end_lr / self.start_lr
        return [self.start_lr * ratio ** (i / (self.steps - 1)) for i in range(self.steps)]


@dataclass
class RangeTest:
    """The recorded curve and what it suggests."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)  # without lag: filled in by `suggest`
    stopped: str = "reached lr_find.end_lr"
    suggestion: float = math.nan
    suggestion_index: int = -1
    minimum_lr: float = math.nan
    running: list[float] = field(default_factory=list)  # the loss's moving average: what the stop rule watches
    diverge: float = 4.0  # the stop rule: the moving average above this multiple of its minimum
    smoothing: float = 0.9  # the moving averages' coefficient

    def record(self, lr: float, loss: float) -> bool:
        """Add one step's loss; False once the test must stop (a non-finite or diverged loss)."""
        if not math.isfinite(loss):
            self.stopped = f"the loss became {loss} at lr {lr:.3g}"
            return False
        self.lrs.append(lr)
        self.losses.append(loss)
        previous = self.running[-1] if self.running else 0.0
        self.running.append(moving_average(loss, previous, len(self.losses), self.smoothing))
        if self.running[-1] > self.diverge * min(self.running):
            self.stopped = f"the smoothed loss passed {self.diverge:g}x its minimum at lr {lr:.3g}"
            return False
        return True


def moving_average(value: float, previous: float, n: int, beta: float) -> float:
    """The `n`th value of a bias-corrected exponential moving average (Adam's correction: the first values are
    not pulled towards the average's start at 0), from the (n-1)th, `previous`."""
    raw = previous * (1 - beta ** (n - 1))
    return (beta * raw + (1 - beta) * value) / (1 - beta ** n)


def smooth_both_ways(values: list[float], beta: float) -> list[float]:
    """The moving average run forwards, then backwards over the result: its lag (its memory, in steps) cancels,
    so a smoothed value belongs to the rate of its own step (a forward average alone would put the curve's
    fall a few steps, a sizeable factor in lr, to the right of where it happened)."""
    def one_way(series: list[float]) -> list[float]:
        out: list[float] = []
        for n, value in enumerate(series, start=1):
            out.append(moving_average(value, out[-1] if out else 0.0, n, beta))
        return out

    return one_way(one_way(values)[::-1])[::-1]


def suggest(test: RangeTest) -> None:
    """Fill in the suggestion: the rate where the smoothed loss falls fastest per decade, searched from the
    end of the settling start to the loss's minimum. Where the loss falls fastest, a run still learns quickly
    and is far enough from the rates that blow it up; the minimum itself is already too close to them."""
    # A diverged step's loss (1e3 after 0.1) would swamp its neighbours: cap each at the highest moving average
    # before the last step, which is about the starting loss.
    cap = max(test.running[:-1] or test.running)
    smoothed, lrs = smooth_both_ways([min(loss, cap) for loss in test.losses], test.smoothing), test.lrs
    test.smoothed = smoothed
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__, default=0)
    first = max(1, int(SKIPPED * len(smoothed)))
    if lowest - first < 2 or smoothed[lowest] >= smoothed[first]:
        raise UserError(f"the loss did not fall between lr {lrs[0]:.3g} and {lrs[-1]:.3g} ({test.stopped}), so there "
                        "is no rate to suggest: lower lr_find.start_lr, or check that the model can learn the data "
                        "(debug=overfit)")
    logs = [math.log10(lr) for lr in lrs]
    slopes = {i: (smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(first, lowest)}
    best = min(slopes, key=slopes.__getitem__)
    test.suggestion, test.suggestion_index, test.minimum_lr = lrs[best], best, lrs[lowest]


def endless(split: SplitLike, batch_size: int, transform: Transform, seed: int) -> Iterator[Batch]:
    """Shuffled batches, epoch after epoch, as training draws them."""
    epoch = 0
    while True:
        empty = True
        for batch in split.shuffled(batch_size, transform, seed, epoch):
            empty = False
            yield batch
        if empty:
            return
        epoch += 1


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, batches: Iterator[Batch],
               settings: StepSettings, options: RangeOptions, clip: float | None = None, clip_by_norm: bool = True,
               scaler: torch.amp.GradScaler | None = None) -> RangeTest:
    """Train one step per rate of `options.rates()` (fewer when the loss diverges) and return the curve with its
    suggestion. `clip` bounds the gradients' norm (or each value) as `trainer.gradient_clip_val` would."""
    scaler = scaler or torch.amp.GradScaler(settings.device.type, enabled=False)
    test, pending = RangeTest(diverge=options.diverge, smoothing=options.smoothing()), []
    rates = options.rates()
    model.train()
    for lr, (x, y) in zip(rates, batches):
        for group in optimizer.param_groups:
            group["lr"] = lr
        with settings.autocast():
            loss = loss_fn(model(settings.prepare(x)), y)
        scaler.scale(loss).backward()
        if clip is not None:
            scaler.unscale_(optimizer)
            clip_grad = nn.utils.clip_grad_norm_ if clip_by_norm else nn.utils.clip_grad_value_
            clip_grad(model.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        pending.append(loss.detach().float())
        if len(pending) == CHECK_EVERY and not _read(test, rates, pending):
            break
    else:
        _read(test, rates, pending)  # the last block's losses
    if not test.losses:
        raise UserError(f"the range test recorded no loss ({test.stopped}): lower lr_find.start_lr")
    suggest(test)
    return test


def _read(test: RangeTest, rates: list[float], pending: list[torch.Tensor]) -> bool:
    """Record the losses of the steps since the last read (one host sync) and empty `pending`; False when the
    test must stop."""
    if not pending:
        return True
    values = torch.stack(pending).tolist()
    start = len(test.losses)
    pending.clear()
    return all(test.record(rates[start + k], value) for k, value in enumerate(values))
