"""Datasets generated from the seed: offline, instant, for smoke runs, CI and sweeps that must not need files."""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import DictConfig

from trainctl.data.catalog import DATASETS
from trainctl.data.memory import check_generated_fits
from trainctl.data.splits import DataBundle, DataSpec, Split, split_off_validation
from trainctl.data.streams import draw_frequencies, sine_target, stream_splits
from trainctl.errors import UserError


def _blobs(n: int, std: float, generator: torch.Generator) -> Split:
    labels = torch.arange(n) % 2
    centres = torch.tensor([[2.0, 2.0], [-2.0, -2.0]])[labels]
    points = centres + std * torch.randn(n, 2, generator=generator)
    return Split(points, labels)


@DATASETS.register("blobs")
def build_blobs(cfg: DictConfig, seed: int) -> DataBundle:
    """Two Gaussian clusters at (2, 2) and (-2, -2): generated from the seed, offline, instant."""
    check_generated_fits(cfg)
    generator = torch.Generator().manual_seed(seed)
    train, val = split_off_validation(_blobs(cfg.n_train, cfg.std, generator), cfg.val_fraction, seed)
    test = _blobs(cfg.n_test, cfg.std, generator)
    return DataBundle(train, val, test, DataSpec((2,), 2, "classification", ("(2,2)", "(-2,-2)")))


def _sine(n: int, length: int, generator: torch.Generator, target: str, frequencies: tuple[float, float]) -> Split:
    phase = torch.rand(n, 1, generator=generator) * 2 * torch.pi
    frequency = draw_frequencies((n, 1), frequencies, generator)  # periods per sequence
    t = phase + frequency * torch.linspace(0, 2 * torch.pi, length).unsqueeze(0)
    dt = frequency * (2 * torch.pi / (length - 1))  # linspace's spacing
    return Split(torch.sin(t).unsqueeze(-1), sine_target(t, dt, target).unsqueeze(-1))


def _frequencies(value: Any) -> tuple[float, float]:
    """`dataset.frequencies` as (low, high), or a UserError naming it."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low = high = math.nan
    if not (0 < low <= high and math.isfinite(high)):
        raise UserError(f"dataset.frequencies={list(value) if hasattr(value, '__iter__') else value} is not a "
                        "range [low, high] with 0 < low <= high (cycles per sequence), e.g. [0.5, 1.5] or [1, 1]")
    return low, high


@DATASETS.register("sine")
def build_sine(cfg: DictConfig, seed: int) -> DataBundle:
    """Regression: sequences of sin(t) as input and cos(t) (`target=next`: the next step's sin) as target, at
    random phases and frequencies."""
    check_generated_fits(cfg)
    generator = torch.Generator().manual_seed(seed)
    target = cfg.get("target") or "cos"  # configs stored before these keys existed meant cos, [0.5, 1.5]
    frequencies = _frequencies(cfg.get("frequencies") or [0.5, 1.5])
    if cfg.get("streams"):  # consecutive windows of continuous signals, trained in order (model.stateful)
        train, val, test = stream_splits(cfg.streams, cfg.n_train, cfg.n_test, cfg.length, cfg.val_fraction,
                                         generator, target, frequencies)
    else:
        train, val = split_off_validation(_sine(cfg.n_train, cfg.length, generator, target, frequencies),
                                          cfg.val_fraction, seed)
        test = _sine(cfg.n_test, cfg.length, generator, target, frequencies)
    spec = DataSpec((cfg.length, 1), 0, "regression", (), (cfg.length, 1))
    return DataBundle(train, val, test, spec)
