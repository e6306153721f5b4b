"""Range and consistency checks on a composed config, run before anything is written.

Hydra's typed schemas already reject unknown keys and wrong types; this adds what types cannot say: limits on
values (from each schema field's metadata) and rules that span keys (the objective must be a metric we compute).
Every problem found is reported at once, one line each, naming the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainctl.config.compose import GROUPS
from trainctl.config.schemas.run import TrainConfig
from trainctl.errors import UserError
from trainctl.metrics import known_metrics, unknown_metrics

def _limit_problems(key: str, value: Any, meta: dict[str, Any]) -> list[str]:
    problems = []
    checks = {
        "ge": (lambda v, b: v >= b, ">="),
        "gt": (lambda v, b: v > b, ">"),
        "le": (lambda v, b: v <= b, "<="),
        "lt": (lambda v, b: v < b, "<"),
    }
    for name, (ok, sign) in checks.items():
        if name in meta and value is not None and not ok(value, meta[name]):
            problems.append(f"{key}={value} is out of range: it must be {sign} {meta[name]}")
        each = f"each_{name}"
        if each in meta and isinstance(value, (list, tuple)):
            bad = [v for v in value if not ok(v, meta[each])]
            if bad:
                problems.append(f"{key}={list(value)} has {bad}: every item must be {sign} {meta[each]}")
    if "choices" in meta and value not in meta["choices"]:
        problems.append(f"{key}={value!r} is not allowed: choose one of {', '.join(meta['choices'])}")
    return problems


def _walk(node: DictConfig, prefix: str, schema: type | None = None) -> list[str]:
    schema = schema or OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return []  # user components (`_target_`) carry no schema: their constructor validates them
    problems = []
    for f in dataclasses.fields(schema):
        key = f"{prefix}{f.name}"
        value = node.get(f.name)
        if isinstance(value, DictConfig):
            problems += _walk(value, key + ".")
            continue
        if isinstance(value, ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        problems += _limit_problems(key, value, dict(f.metadata))
    return problems


def config_problems(cfg: DictConfig) -> list[str]:
    """Every out-of-range value and inconsistency in a composed config, as readable lines."""
    # The top level is walked against TrainConfig explicitly: copies of the config (Hydra's callbacks see a
    # masked copy) lose the schema type of the root node.
    problems = _walk(cfg, "", TrainConfig)
    for group in GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            problems += _walk(node, f"{group}.")
    known = known_metrics()
    for key, value in unknown_metrics(lambda key: OmegaConf.select(cfg, key), known):
        problems.append(f"{key}={value!r} is not a metric trainctl computes: choose one of {', '.join(known)}")
    opt = cfg.get("optimizer")
    if opt is not None and opt.get("name") == "sgd" and opt.get("nesterov") and not opt.get("momentum"):
        problems.append("optimizer.nesterov=true needs optimizer.momentum > 0")
    return problems


def validate(cfg: DictConfig) -> None:
    """Raise one UserError listing every problem in the config (nothing is written before this passes)."""
    problems = config_problems(cfg)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UserError(f"invalid config:\n{lines}\nFix the value(s) on the command line or in your config file.")
