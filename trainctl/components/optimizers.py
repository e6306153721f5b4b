"""Optimizer builders: `build_optimizer(cfg, model) -> Optimizer`."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.config.targets import component_name, has_target, instantiate_target
from trainctl.errors import UserError
from trainctl.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def param_groups(cfg: DictConfig, model: nn.Module) -> list[dict]:
    """One group, or two when `no_decay_bias_norm`: biases and normalisation weights get no weight decay
    (decaying them only shrinks scales and offsets that have nothing to do with overfitting)."""
    if not cfg.get("no_decay_bias_norm"):
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                (no_decay if name == "bias" or isinstance(module, NORM_LAYERS) else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _fused(groups: list[dict]) -> bool | None:
    """The fused kernels (one launch for all parameters; about 10% faster per step on a 2-core CPU for the
    seed CNN) need floating-point parameters on CPU or CUDA."""
    params = [p for g in groups for p in g["params"]]
    ok = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return True if ok else None


def _betas(cfg: DictConfig) -> tuple[float, float]:
    """The two running-average coefficients; checked here so that every caller of the builder gets the message
    (torch would take the first two of three values and fail on one with an IndexError)."""
    betas = tuple(cfg.betas)
    if len(betas) != 2:
        raise UserError(f"optimizer.betas={list(betas)} needs two values, the running-average coefficients of the "
                        "gradient and of its square: e.g. optimizer.betas=[0.9,0.999]")
    return betas


def _settings(cfg: DictConfig, group: str) -> str:
    return ", ".join(f"{group}.{k}={v}" for k, v in cfg.items() if k != "name")


@OPTIMIZERS.register("sgd")
def build_sgd(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Stochastic gradient descent with momentum, Nesterov and weight decay."""
    if cfg.nesterov and (cfg.momentum <= 0 or cfg.dampening != 0):
        raise UserError(f"optimizer.nesterov=true needs optimizer.momentum > 0 and optimizer.dampening=0, not "
                        f"momentum={cfg.momentum} and dampening={cfg.dampening}: change those, or set "
                        "optimizer.nesterov=false")
    groups = param_groups(cfg, model)
    momentum = cfg.momentum > 0
    fused = _fused(groups) if not momentum or cfg.dampening == 0 else None
    optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                dampening=cfg.dampening, weight_decay=cfg.weight_decay, fused=fused)
    if fused and momentum:
        # torch's fused SGD makes its momentum buffers with empty_like at the first step and leaves them unwritten
        # when the gradient scaler skips that step (fp16: an overflow at the first scale is usual), so every later
        # step would read uninitialised memory. Zeros give the first step the very same update (dampening 0).
        for group in optimizer.param_groups:
            for param in group["params"]:
                optimizer.state[param]["momentum_buffer"] = torch.zeros_like(param)
    return optimizer


@OPTIMIZERS.register("adam")
def build_adam(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba), fused where the device supports it."""
    groups = param_groups(cfg, model)
    return torch.optim.Adam(groups, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps,
                            weight_decay=cfg.weight_decay, fused=_fused(groups))


@OPTIMIZERS.register("adamw")
def build_adamw(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter)."""
    groups = param_groups(cfg, model)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps,
                             weight_decay=cfg.weight_decay, fused=_fused(groups))


@OPTIMIZERS.register("nadam")
def build_nadam(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """NAdam: Adam with Nesterov momentum (Dozat)."""
    return torch.optim.NAdam(param_groups(cfg, model), lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("rmsprop")
def build_rmsprop(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """RMSprop (Hinton), optionally centred and with momentum."""
    return torch.optim.RMSprop(param_groups(cfg, model), lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps,
                               momentum=cfg.momentum, centered=cfg.centered, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adagrad")
def build_adagrad(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adagrad (Duchi et al.): per-parameter rates from accumulated squared gradients."""
    groups = param_groups(cfg, model)
    return torch.optim.Adagrad(groups, lr=cfg.lr, lr_decay=cfg.lr_decay, eps=cfg.eps,
                               weight_decay=cfg.weight_decay, fused=_fused(groups))


def build_optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"the model has no trainable parameters, so optimizer '{component_name(cfg)}' has nothing "
                        "to train: give the model parameters that require gradients")
    if has_target(cfg):
        return instantiate_target(cfg, [p for p in model.parameters() if p.requires_grad])
    builder = OPTIMIZERS.get(cfg.name)
    try:
        return builder(cfg, model)
    except ValueError as e:  # torch refusing a value the schema allows, or a caller that skipped validation
        raise UserError(f"optimizer '{cfg.name}' cannot be built with {_settings(cfg, 'optimizer')}: {e}") from None
