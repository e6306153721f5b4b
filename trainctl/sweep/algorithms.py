"""Samplers and pruners: `hydra.sweeper.sampler` / `pruner` by short name (`tpe`, `median`, ...) or as a
`_target_` mapping with arguments:

    sampler: {_target_: optuna.samplers.TPESampler, n_startup_trials: 10, multivariate: true}
    pruner: {_target_: optuna.pruners.PatientPruner, patience: 2,
             wrapped_pruner: {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 1}}

A `_target_` is imported and checked to be an Optuna sampler (pruner) class, and its arguments against the
class's signature, before it is called: any other class or function is refused, never run.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import optuna
from omegaconf import OmegaConf

from trainctl.config.targets import builds, instantiate_target
from trainctl.errors import UserError
from trainctl.registry import did_you_mean
from trainctl.sweep.space import SearchSpace, grid_values

SAMPLERS = ("tpe", "random", "cmaes", "grid", "qmc", "nsgaii")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
KINDS = {"sampler": optuna.samplers.BaseSampler, "pruner": optuna.pruners.BasePruner}


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler calls `study.stop()` once the grid is done, which only works inside `study.optimize`; the
    sweep driver asks and tells instead, and stops by capping n_trials at the grid's size."""

    def after_trial(self, study, trial, state, values) -> None:  # type: ignore[no-untyped-def]
        pass


def is_target(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("_target_"), str) and value["_target_"].strip() != ""


def setting_line(value: Any) -> str:
    """A setting as one stable line: the name, or the mapping with sorted keys (for the study name's hash)."""
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict) else str(value)


def _checker(kind: str, args: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The check `instantiate_target` runs on the imported object before calling it: an Optuna class of the
    right kind, given only arguments its constructor takes."""
    base = KINDS[kind]

    def check(path: str, target: Any, key: str) -> None:
        built = builds(target)
        if built is None or not issubclass(built, base):
            raise UserError(f"{key}._target_={path} is not an Optuna {kind} (a subclass of optuna.{kind}s."
                            f"{base.__name__}): give a class of optuna.{kind}s, or one of the short names")
        if issubclass(built, optuna.samplers.GridSampler):
            raise UserError(f"{key}._target_={path}: use {key}=grid, which takes the grid from the search space")
        params = inspect.signature(target).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        for name in args:
            if name not in params:
                raise UserError(f"{key}.{name}: {path} has no argument '{name}'{did_you_mean(name, list(params))}"
                                f" (it takes {', '.join(params) or 'none'})")
    return check


def build_target(spec: dict[str, Any], kind: str, key: str, **context: Any) -> Any:
    """Build a sampler or pruner from its `_target_` mapping; `context` (the sweep's seed) is passed when the
    class takes it and the mapping does not set it. A nested `_target_` argument (PatientPruner's
    `wrapped_pruner`, PartialFixedSampler's `base_sampler`) is built the same way, as the same kind."""
    args = {k: v for k, v in spec.items() if k != "_target_"}
    nested = {k: build_target(v, kind, f"{key}.{k}") for k, v in args.items() if is_target(v)}
    plain = {k: v for k, v in spec.items() if k not in nested}
    try:
        return instantiate_target(OmegaConf.create(plain), check=_checker(kind, args), key=key,
                                  **nested, **{k: v for k, v in context.items() if k not in args})
    except UserError as e:
        if str(e).startswith(key):
            raise
        hint = _class_hint(spec["_target_"], kind)
        raise UserError(f"{key}: {str(e).rstrip('.') + hint if hint else e}") from None


def _class_hint(path: str, kind: str) -> str:
    """A did-you-mean for a misspelt Optuna class (`optuna.samplers.TPESamplr`)."""
    module, _, name = path.rpartition(".")
    package = getattr(optuna, f"{kind}s")
    if module != f"optuna.{kind}s" or hasattr(package, name):
        return ""
    classes = [n for n in package.__all__ if n.endswith(kind.capitalize())]
    return did_you_mean(name, classes) or f" (Optuna's {kind}s: {', '.join(classes)})"


def _offset(seed: Any, joined: int) -> Any:
    return (seed + joined) % 2**32 if isinstance(seed, int) and not isinstance(seed, bool) else seed


def make_sampler(setting: Any, seed: int | None, space: SearchSpace, joined: int = 0) -> optuna.samplers.BaseSampler:
    """The sweep's `seed` seeds a named sampler, and a `_target_` one that takes a seed and sets none. Either
    seed is offset by `joined` (how many sweep processes joined the study before this one), so processes
    sharing a study, even started together, draw different sequences."""
    if is_target(setting):
        setting = {**setting, "seed": _offset(setting["seed"], joined)} if "seed" in setting else setting
        return build_target(setting, "sampler", "hydra.sweeper.sampler", seed=_offset(seed, joined))
    seed = _offset(seed, joined)
    if setting == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if setting == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if setting == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if setting == "grid":
        return AskTellGridSampler(grid_values(space), seed=seed)
    if setting == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if setting == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise UserError(f"unknown sampler '{setting}'{did_you_mean(str(setting), list(SAMPLERS))} "
                    f"(valid: {', '.join(SAMPLERS)})")


def make_pruner(setting: Any, startup_trials: int, warmup_epochs: int,
                max_epochs: int) -> optuna.pruners.BasePruner:
    """A named pruner (the median one takes `pruner_startup_trials` and `pruner_warmup_epochs`), or a
    `_target_` one with exactly the arguments its mapping gives."""
    if is_target(setting):
        return build_target(setting, "pruner", "hydra.sweeper.pruner")
    if setting == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
    if setting == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    if setting == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if setting == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"unknown pruner '{setting}'{did_you_mean(str(setting), list(PRUNERS))} "
                    f"(valid: {', '.join(PRUNERS)})")
