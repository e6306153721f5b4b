"""Datasets generated from the seed: offline, instant, for smoke runs, CI and sweeps that must not need files."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from trainctl.data.catalog import DATASETS
from trainctl.data.memory import check_generated_fits
from trainctl.data.splits import DataBundle, DataSpec, Split, split_off_validation
from trainctl.data.streams import sine_target, stream_splits


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


def _sine(n: int, length: int, generator: torch.Generator, target: str) -> Split:
    phase = torch.rand(n, 1, generator=generator) * 2 * torch.pi
    frequency = 0.5 + torch.rand(n, 1, generator=generator)  # 0.5 to 1.5 radians per unit time
    t = phase + frequency * torch.linspace(0, 2 * torch.pi, length).unsqueeze(0)
    dt = frequency * (2 * torch.pi / (length - 1))  # linspace's spacing
    return Split(torch.sin(t).unsqueeze(-1), sine_target(t, dt, target).unsqueeze(-1))


@DATASETS.register("sine")
def build_sine(cfg: DictConfig, seed: int) -> DataBundle:
    """Regression: sequences of sin(t) as input and cos(t) (`target=next`: the next step's sin) as target, at
    random phases and frequencies."""
    check_generated_fits(cfg)
    generator = torch.Generator().manual_seed(seed)
    target = cfg.get("target") or "cos"  # configs stored before the key existed meant cos
    if cfg.get("streams"):  # consecutive windows of continuous signals, trained in order (model.stateful)
        train, val, test = stream_splits(cfg.streams, cfg.n_train, cfg.n_test, cfg.length, cfg.val_fraction,
                                         generator, target)
    else:
        train, val = split_off_validation(_sine(cfg.n_train, cfg.length, generator, target), cfg.val_fraction,
                                          seed)
        test = _sine(cfg.n_test, cfg.length, generator, target)
    spec = DataSpec((cfg.length, 1), 0, "regression", (), (cfg.length, 1))
    return DataBundle(train, val, test, spec)
