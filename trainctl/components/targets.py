"""The `_target_` escape hatch: build a user's class from a config node, passing what trainctl knows.

`model: {_target_: mypkg.MyNet, width: 64}` calls `mypkg.MyNet(width=64, ...)`, adding `input_shape`,
`num_classes` (and so on) only when the constructor accepts them, so user classes need no trainctl imports.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainctl.errors import UserError


def has_target(cfg: DictConfig) -> bool:
    return isinstance(cfg, DictConfig) and "_target_" in cfg


def component_name(cfg: DictConfig) -> str:
    """The registry name, or the class path of a `_target_` component."""
    return str(cfg.get("name") or cfg.get("_target_"))


def _import_target(path: str, get_object: Any) -> Any:
    """Import a `_target_`; a module in the working directory is found as `python -m` would find it, also
    when trainctl runs as the `trainctl` console script (whose sys.path lacks the working directory)."""
    try:
        return get_object(path)
    except ImportError:
        cwd = os.getcwd()
        if cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)  # appended: the working directory never shadows an installed package
        return get_object(path)


def instantiate_target(cfg: DictConfig, *args: Any, **context: Any) -> Any:
    from hydra.utils import get_object

    path = cfg._target_
    try:
        target = _import_target(path, get_object)
    except Exception as e:
        raise UserError(f"cannot import _target_ '{path}': {e}. Check the module is on PYTHONPATH "
                        "(or installed) and the name is spelled right.") from None
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in ("_target_", "name")}
    try:
        params = inspect.signature(target).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, takes_any = {}, False
    kwargs.update({k: v for k, v in context.items() if (takes_any or k in params) and k not in kwargs})
    try:
        return target(*args, **kwargs)
    except TypeError as e:
        raise UserError(f"cannot build {path} with {sorted(kwargs)}: {e}") from None
