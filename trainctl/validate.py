"""Range and consistency checks on a composed config, run before anything is written.

Hydra's typed schemas already reject unknown keys and wrong types; this adds what types cannot say: limits on
values (from each schema field's metadata) and rules that span keys (the objective must be a metric we compute).
Every problem found is reported at once, one line each, naming the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainctl.errors import UserError

# Config keys that name a metric; each must be one the run produces. Here they are checked against every
# metric a run can produce; the loop checks again against the task of the dataset it built.
METRIC_KEYS = ("objective", "checkpoint.monitor", "scheduler.monitor", "early_stopping.monitor")


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


def objectives(value: Any) -> list[str]:
    """`objective` as a list: one metric, or several for a multi-objective sweep."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple, ListConfig)) else [str(value)]


def known_metrics(task: str | None = None, many_classes: bool = True) -> list[str]:
    """Metrics a run reports per epoch: val/* in full, train/* loss and score (all tasks when `task` is None)."""
    from trainctl.metrics import metric_names

    tasks = [task] if task else ["classification", "regression"]
    names = [metric_names(t, many_classes) for t in tasks]
    val = [n for per_task in names for n in per_task]
    train = [n for per_task in names for n in per_task[:2]]
    return [f"val/{n}" for n in dict.fromkeys(val)] + [f"train/{n}" for n in dict.fromkeys(train)]


def unknown_metrics(cfg: DictConfig, known: list[str]) -> list[tuple[str, str]]:
    """(key, value) of every metric-naming key whose value is not in `known`."""
    return [(key, value) for key in METRIC_KEYS for value in objectives(OmegaConf.select(cfg, key))
            if value not in known]


def config_problems(cfg: DictConfig) -> list[str]:
    """Every out-of-range value and inconsistency in a composed config, as readable lines."""
    from trainctl.config import TrainConfig

    # The top level is walked against TrainConfig explicitly: copies of the config (Hydra's callbacks see a
    # masked copy) lose the schema type of the root node.
    problems = _walk(cfg, "", TrainConfig)
    for group in ("model", "dataset", "optimizer", "scheduler", "loss", "device"):
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            problems += _walk(node, f"{group}.")
    known = known_metrics()
    for key, value in unknown_metrics(cfg, known):
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
