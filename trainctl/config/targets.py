"""The `_target_` escape hatch: build a user's class from a config node, passing what trainctl knows.

`model: {_target_: mypkg.MyNet, width: 64}` calls `mypkg.MyNet(width=64, ...)`, adding `input_shape`,
`num_classes` (and so on) only when the constructor accepts them, so user classes need no trainctl imports.

A `_target_` is checked before anything is called: it must be a class of the kind its group builds (a
`torch.nn.Module` for `model` and `loss`, an optimizer, a schedule, a callback), or a factory whose return
annotation says it builds one. So `+loss._target_=os.system` is an error, never a shell call.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
import typing
from importlib import util as importlib_util
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from trainctl.errors import UserError, what_raised


def has_target(cfg: DictConfig) -> bool:
    return isinstance(cfg, DictConfig) and "_target_" in cfg


def component_name(cfg: DictConfig) -> str:
    """The registry name, or the class path of a `_target_` component."""
    return str(cfg.get("name") or cfg.get("_target_"))


def run_dir_holding(path: str) -> Path | None:
    """The run directory that module path `path` would be imported from (`runs.shared.evil` from the working
    directory when `runs/shared/` holds a run), found without importing anything; None when it lies in none."""
    from trainctl.files import holds_run

    parts = path.split(".")
    try:
        spec = importlib_util.find_spec(parts[0])  # a top-level name: located, not imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or []) or ([Path(spec.origin).parent] if spec.origin else [])
    for root in roots:
        folder = Path(root)
        for part in ["", *parts[1:]]:
            folder = folder / part if part else folder
            if not folder.is_dir():
                break
            if holds_run(folder):
                return folder
    return None


def check_not_in_run_dir(path: str, key: str) -> None:
    """A run directory is data someone may have shared: code inside one is never imported, trusted or not."""
    folder = run_dir_holding(path)
    if folder is not None:
        raise UserError(f"{key}._target_={path} is a module inside the run directory {folder}: a run directory "
                        "holds data, and trainctl never imports code from one. Move the module into a package or "
                        "folder of your own (outside the run directories) and name it there.")


def check_callback_class(path: str, key: str) -> None:
    """A Hydra callback named on the command line: refused unless it is a class derived from Hydra's Callback
    (checked before Hydra calls anything)."""
    from hydra.experimental.callback import Callback
    from hydra.utils import get_object

    _cwd_on_path()
    check_not_in_run_dir(path, key)
    try:
        target = _import_target(path, get_object)
    except Exception as e:
        raise UserError(f"cannot import {key}._target_={path}: {_import_problem(e)}.") from None
    if not (inspect.isclass(target) and issubclass(target, Callback)):
        raise UserError(f"{key}._target_={path} is not a Hydra callback (a class derived from "
                        "hydra.experimental.callback.Callback): Hydra would call it at start-up. Give such a class, "
                        "or add a trainctl callback with +callbacks.NAME._target_=your.module.Class.")


def _cwd_on_path() -> None:
    """A module in the working directory is found as `python -m` would find it, also when trainctl runs as the
    `trainctl` console script (whose sys.path lacks the working directory); appended, so it never shadows an
    installed package. Before any check of a target, which must see what the import would see."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def _import_target(path: str, get_object: Any) -> Any:
    """Import a `_target_` (the caller has put the working directory on sys.path, so a module there is found as
    `python -m` would find it, also when trainctl runs as the `trainctl` console script)."""
    hydra_log = logging.getLogger("hydra.utils")  # it logs the error we are about to report: once is enough
    disabled, hydra_log.disabled = hydra_log.disabled, True
    try:
        return get_object(path)
    finally:
        hydra_log.disabled = disabled


# Keys trainctl applies itself, never passed to the class: model.freeze; how a scheduler is stepped.
OWN_KEYS = {"model": ("freeze",), "scheduler": ("interval", "monitor")}
def _import_problem(error: Exception) -> str:
    """Hydra's three-line import error as one phrase: what is missing."""
    missing = re.search(r"that '([^']+)' is importable from module '([^']+)'", str(error))
    if missing:
        return f"module {missing.group(2)} has no attribute or submodule '{missing.group(1)}'"
    cause = error.__cause__ or error
    first = (str(cause).strip().splitlines() or [""])[0]
    text = f"{type(cause).__name__}: {first}" if cause is not error else first or type(error).__name__
    return text.rstrip(".")


KIND_NAMES = {"Module": "torch.nn.Module", "Optimizer": "torch.optim.Optimizer",
              "LRScheduler": "torch.optim.lr_scheduler.LRScheduler"}


def _expected_kinds(group: str) -> tuple[type, ...] | None:
    """The base classes a group's `_target_` must build."""
    import torch

    return {
        "model": (torch.nn.Module,), "loss": (torch.nn.Module,), "optimizer": (torch.optim.Optimizer,),
        "scheduler": (torch.optim.lr_scheduler.LRScheduler,),
    }.get(group, ())


def builds(target: Any) -> type | None:
    """The class a target builds: itself when it is a class, else its return annotation when that is a class."""
    if inspect.isclass(target):
        return target
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # no annotations, or ones that do not resolve
        return None
    built = hints.get("return")
    return built if inspect.isclass(built) else None


def check_kind(path: str, target: Any, key: str) -> None:
    """Refuse a target that is not a class of the group's kind (or a factory annotated to return one).
    Callers outside the component groups (callbacks) pass their own check to `instantiate_target`."""
    group = key.split(".")[0]
    built = builds(target)
    kinds = _expected_kinds(group)
    if kinds and (built is None or not issubclass(built, kinds)):
        names = " or ".join(KIND_NAMES.get(k.__qualname__, k.__qualname__) for k in kinds)
        what = "a function with no return annotation" if built is None and callable(target) else repr(built)
        raise UserError(f"{key}._target_={path} does not build a {names} (it is {what}): give a class "
                        f"derived from {names}, or a factory annotated to return one.")


def import_target(path: str, key: str = "component") -> Any:
    """The object a `_target_` names, imported (from the working directory too) but not called; never a module
    inside a run directory (`key` names the node in that message)."""
    from hydra.utils import get_object

    _cwd_on_path()
    check_not_in_run_dir(str(path), str(key))
    try:
        return _import_target(path, get_object)
    except Exception as e:
        raise UserError(f"cannot import _target_ '{path}': {_import_problem(e)}. Check the module is on PYTHONPATH "
                        "(or installed) and the name is spelled right.") from None


COMPONENT_GROUPS = ("model", "loss", "optimizer", "scheduler")  # the groups whose `_target_` check_kind knows


def check_component_targets(cfg: DictConfig) -> None:
    """Import each component `_target_` of `cfg` and check its kind, calling nothing: a command that builds only
    part of the config (summary builds the model, lr-find no scheduler) refuses what `train` would refuse."""
    for group in COMPONENT_GROUPS:
        node = cfg.get(group)
        if has_target(node):
            path = str(node._target_)
            check_kind(path, import_target(path, group), group)


def instantiate_target(cfg: DictConfig, *args: Any, check: Callable[[str, Any, str], None] = check_kind,
                       key: str | None = None, **context: Any) -> Any:
    """Build `cfg._target_` with the node's other keys (and the `context` its signature takes); `key` names the
    node in messages when it is not where the config tree holds it (a copy)."""
    path = cfg._target_
    key = key or cfg._get_full_key(None) or "component"
    target = import_target(path, str(key))
    check(path, target, str(key))  # before anything is called
    own = ("_target_", "name", *OWN_KEYS.get(str(key).split(".")[0], ()))
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in own}
    try:
        params = inspect.signature(target).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, takes_any = {}, False
    kwargs.update({k: v for k, v in context.items() if (takes_any or k in params) and k not in kwargs})
    return call_target(target, path, str(key), *args, **kwargs)


def call_target(target: Any, path: str, key: str, /, *args: Any, **kwargs: Any) -> Any:
    """`target(*args, **kwargs)`, the user's class or factory: its failure is one message naming the node.
    Positional-only, so a user's own `path=` or `key=` setting reaches their class."""
    try:
        return target(*args, **kwargs)
    except UserError:
        raise
    except TypeError as e:
        raise UserError(f"cannot build {path} with {sorted(kwargs)}: {e}") from None
    except Exception as e:  # the user's own code refused its arguments: say whose code, and its first line
        raise UserError(f"{key}: {path}({', '.join(sorted(kwargs))}) raised {what_raised(e)}. "
                        f"Fix the class or its settings ({key}.*).") from None
