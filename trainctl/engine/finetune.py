"""Fine-tuning: start a new run from a checkpoint's weights (`init_from`) and freeze layers (`model.freeze`).

Both change only the model a run starts with; the optimizer, schedule and counters are fresh. `prepare_model`
is the one place they happen, between building the model and building its optimizer, for `train` and `lr-find`
alike. Only the checkpoint's weights are read: the model is built from the user's config, so a checkpoint
from another dataset (another class count) can start a run whose head no longer fits, when that is allowed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.components.naming import legacy_name, module_name, upgrade_state_dict
from trainctl.config.targets import component_name
from trainctl.engine.checkpoint import checkpoint_file, load_checkpoint
from trainctl.errors import UserError

log = logging.getLogger("trainctl")
LISTED = 8  # names shown per kind of mismatch; the rest are counted


def init_source(cfg: DictConfig) -> Path | None:
    """The checkpoint `init_from` names (a `.pt` file, or a run directory's `checkpoints/best.pt`), checked
    before a run directory is made; None when unset. `resume` continues a run with its own weights, so the two
    together are refused."""
    value = cfg.get("init_from")
    if value is None:
        return None
    if cfg.get("resume"):
        raise UserError(f"resume={cfg.resume} and init_from={value} cannot be used together: resume= continues a "
                        "run with its own weights, init_from= starts a new run from another's. Drop one of them.")
    if not str(value).strip():
        raise UserError("init_from= needs a run directory or a checkpoint, e.g. init_from=runs/<run>")
    path = checkpoint_file(str(value))
    if not path.is_file():
        raise UserError(f"init_from={value}: no checkpoint at {path}. Give a run directory (runs/<run>, its "
                        "checkpoints/best.pt is used) or a .pt file from its checkpoints/ folder.")
    return path


def prepare_model(cfg: DictConfig, model: nn.Module, device: torch.device) -> None:
    """Load the `init_from` weights into `model`, then freeze the `model.freeze` prefixes (a resumed run gets
    its weights from its own checkpoint instead, so `init_from` is not read then)."""
    path = None if cfg.get("resume") else init_source(cfg)
    if path is not None:
        stored = load_initial_weights(model, path, device, strict=bool(cfg.get("init_from_strict", True)))
        say_ignored_targets(cfg, path, stored)
    prefixes = cfg.model.get("freeze") or []
    if prefixes:
        freeze(model, [str(p) for p in prefixes], component_name(cfg.model))


def say_ignored_targets(cfg: DictConfig, path: Path, stored: dict[str, Any]) -> None:
    """init_from reads weights only: code that the checkpoint's config or its run's files name is never
    imported; say so (once) rather than leave the user guessing whether it ran."""
    from trainctl.config.trust import ignored_targets_notice, stored_targets
    from trainctl.engine.resume import run_dir_of

    notice = ignored_targets_notice(run_dir_of(path), stored_targets(stored), cfg, path,
                                    "init_from reads only the weights; the model was built from your config.")
    if notice:
        log.warning("init_from: %s", notice)


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(map(str, t.shape)) + "]"


def _listed(names: Sequence[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def weights_of(state: dict[str, Any], path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The weights a checkpoint's run was evaluated with: its moving average when it kept one."""
    ema = state.get("ema")
    weights, what = (ema, "the moving-average (EMA) weights") if isinstance(ema, dict) and ema else (
        state["model"], "the weights")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise UserError(f"init_from: {path} holds no state dict of tensors under 'model': it is not a "
                        "trainctl checkpoint.")
    return weights, what


def load_initial_weights(model: nn.Module, path: Path, device: torch.device, strict: bool = True
                         ) -> dict[str, Any]:
    """Copy the checkpoint's tensors into `model` by name; return the checkpoint's stored config (data). Tensors
    whose shape differs, the model's tensors the checkpoint lacks and the checkpoint's tensors the model lacks
    are one error listing them; with `strict=False` the model keeps its fresh initialisation for them and the
    log lists them."""
    state = load_checkpoint(path, map_location=device)
    weights, what = weights_of(state, path)
    weights = upgrade_state_dict(model, weights)  # a checkpoint from before layers had names: by position
    own = model.state_dict()
    reshaped = [f"{k} {_shape(weights[k])} -> {_shape(v)}" for k, v in own.items()
                if k in weights and weights[k].shape != v.shape]
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    problems = [f"{title}: {_listed(names)}" for title, names in (
        ("shape differs (checkpoint -> model)", reshaped), ("not in the checkpoint", missing),
        ("not in the model", unexpected)) if names]
    if problems and strict:
        raise UserError(f"init_from={path}: its weights do not fit the model built from this config; "
                        + "; ".join(problems) + ". Add init_from_strict=false to load the tensors that fit and "
                        "start the others afresh (a new head for a new class count), or build the model with the "
                        "checkpoint's settings.")
    fitting = {k: weights[k] for k, v in own.items() if k in weights and weights[k].shape == v.shape}
    if not fitting:
        raise UserError(f"init_from={path}: none of its {len(weights)} tensors fits the model built from this "
                        "config (different names or shapes everywhere): is it a checkpoint of this kind of model?")
    with torch.no_grad():
        for key, tensor in fitting.items():
            own[key].copy_(tensor)  # state_dict() tensors share storage with the model's parameters
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    origin = ", ".join(f"{k} {v}" for k, v in (("epoch", state.get("epoch")),
                                              ("dataset", (config.get("dataset") or {}).get("name"))) if v)
    log.info("init_from: loaded %s of %s (%s): %d of %d tensors", what, path, origin or "no run details",
             len(fitting), len(own))
    if problems:
        log.info("init_from: started afresh (init_from_strict=false): %s", "; ".join(problems))
    return config


def _matches(name: str, prefix: str) -> bool:
    """Whole dotted components: `layer1` matches `layer1.0.conv1.weight`, not `layer10.weight`."""
    return name == prefix or name.startswith(prefix + ".")


def _top_level(model: nn.Module) -> str:
    return ", ".join(f"{name} ({type(child).__name__})" for name, child in model.named_children()
                     if any(True for _ in child.parameters())) or "none with parameters"


def _resolved(model: nn.Module, prefix: str, named: Sequence[tuple[str, nn.Parameter]]) -> str | None:
    """The module name `prefix` stands for: itself, or the layer an index names as older versions did
    (`0`, `features.3`, a parameter's `3.weight`); None when neither has parameters."""
    parameter = {legacy_name(model, name): name for name, _ in named}.get(prefix)
    for candidate in (prefix, module_name(model, prefix), parameter):
        if candidate and any(_matches(name, candidate) for name, _ in named):
            return candidate
    return None


def freeze(model: nn.Module, prefixes: Sequence[str], model_name: str = "model") -> int:
    """Stop training the parameters under each module-name prefix (`requires_grad=False`, so the optimizer,
    built after, leaves them out); returns how many parameter values stay trainable."""
    named = list(model.named_parameters())
    cleaned: list[str] = []
    for given in prefixes:
        prefix = _resolved(model, given.strip().rstrip("."), named)
        if prefix is None:
            raise UserError(f"model.freeze: '{given}' names no module with parameters in model '{model_name}'. "
                            f"Its top-level modules are: {_top_level(model)} (deeper ones by dotted name, e.g. "
                            "layer1.0; an index as in nn.Sequential, e.g. 0, also works); see them all with "
                            "`trainctl summary`.")
        cleaned.append(prefix)
    frozen = {n for n, _ in named if any(_matches(n, prefix) for prefix in cleaned)}
    if not any(p.requires_grad for n, p in named if n not in frozen):
        raise UserError(f"model.freeze={list(prefixes)} freezes every parameter of model '{model_name}', which "
                        f"leaves nothing to train: keep at least one module trainable (top-level modules: "
                        f"{_top_level(model)}).")
    for name, param in named:
        if name in frozen:
            param.requires_grad_(False)
    total = sum(p.numel() for _, p in named)
    trainable = sum(p.numel() for _, p in named if p.requires_grad)
    log.info("model.freeze: froze %d tensors under %s; %s of %s parameters trainable", len(frozen),
             ", ".join(cleaned), f"{trainable:,}", f"{total:,}")
    return trainable
