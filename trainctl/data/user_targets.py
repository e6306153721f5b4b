"""A user's callables named by `_target_` outside the component groups: the transforms of
`dataset.train_transforms`, `eval_transforms` and `label_transforms`, and the targets nested in a `_target_`
dataset's settings (`transform: {_target_: torchvision.transforms.ToTensor}`).

Every `_target_` of a tree is imported and checked before anything in it is called, as the component groups'
are (`trainctl.config.targets.check_kind`): it must be a Python function, or a class whose instances are called
(a `torch.nn.Module`, or a class with `__call__`); builtins and anything from Python's standard library
(`os.system`, `subprocess.Popen`, `functools.partial`) are refused, since no transform comes from there and
they are what a payload would name. Then the tree is built from the leaves up: a class is built with its other
keys (nested targets already built), a function is bound to them (`functools.partial`) and called later with
the batch (or sample) as its first argument.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from trainctl.config.targets import call_target, import_target
from trainctl.errors import UserError

TARGET = "_target_"
NOT_TRANSFORMS = frozenset(sys.stdlib_module_names) | {"builtins"}
EXAMPLE = ("give a transform class (e.g. torchvision.transforms.v2.RandomErasing) or a Python function of your own "
           "that takes a batch")


def _instances_are_callable(cls: type) -> bool:
    return issubclass(cls, torch.nn.Module) or any("__call__" in vars(k) for k in cls.__mro__ if k is not object)


def check_callable_target(path: str, target: Any, key: str) -> None:
    """Refuse what cannot be a transform, before anything is called (see the module)."""
    if not (inspect.isclass(target) or inspect.isfunction(target)):
        raise UserError(f"{key}._target_={path} is neither a class nor a Python function: {EXAMPLE}.")
    module = (getattr(target, "__module__", None) or "").split(".")[0]
    if module in NOT_TRANSFORMS:
        raise UserError(f"{key}._target_={path} is part of Python's standard library ({module}), not a transform: "
                        f"{EXAMPLE}.")
    if inspect.isclass(target) and not _instances_are_callable(target):
        raise UserError(f"{key}._target_={path} is a class whose instances cannot be called (no __call__, not a "
                        f"torch.nn.Module): {EXAMPLE}.")


def plain(node: Any) -> Any:
    """A config node as plain containers (resolved)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node


def is_target(value: Any) -> bool:
    return isinstance(value, dict) and TARGET in value


def check_tree(value: Any, key: str) -> None:
    """Import and check every `_target_` in `value` (plain containers), calling nothing."""
    if is_target(value):
        path = str(value[TARGET])
        check_callable_target(path, import_target(path, key), key)
    if isinstance(value, dict):
        for name, item in value.items():
            check_tree(item, f"{key}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_tree(item, f"{key}.{i}")


def build_tree(value: Any, key: str, own: tuple[str, ...] = ()) -> Any:
    """`value` with every `_target_` built, leaves first; `own` keys of a target are trainctl's, not passed.
    Call `check_tree` first: this calls the targets."""
    if isinstance(value, list):
        return [build_tree(item, f"{key}.{i}") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    built = {name: build_tree(item, f"{key}.{name}") for name, item in value.items() if name not in (TARGET, *own)}
    if not is_target(value):
        return built
    path = str(value[TARGET])
    target = import_target(path, key)
    if inspect.isfunction(target):
        try:
            inspect.signature(target).bind(None, **built)
        except TypeError as e:
            raise UserError(f"{key}: {path} cannot be called as {target.__name__}(batch"
                            f"{''.join(f', {k}=...' for k in built)}): {e}. Its first argument takes the batch; "
                            "the entry's other keys go to its keyword arguments.") from None
        return functools.partial(target, **built)
    return call_target(target, path, key, **built)


def build_callable(node: Any, key: str, own: tuple[str, ...] = ()) -> Callable:
    """One `{_target_: ...}` entry, checked (with everything nested in it) and then built."""
    value = plain(node)
    if not is_target(value):
        raise UserError(f"{key} must be a mapping with a _target_ (a transform class or function), e.g. "
                        f"{{_target_: torchvision.transforms.v2.RandomErasing, p: 0.25}}; got {node!r}")
    check_tree(value, key)
    fn = build_tree(value, key, own)
    if not callable(fn):
        raise UserError(f"{key}._target_={value[TARGET]} built a {type(fn).__name__}, which cannot be called on a "
                        "batch: give a class whose instances are callable.")
    return fn
