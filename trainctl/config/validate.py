"""Range and consistency checks on a composed config, run before anything is written.

Hydra's typed schemas already reject unknown keys and wrong types; this adds what types cannot say: limits on
values (from each schema field's metadata) and rules that span keys (the objective must be a metric we compute).
Every problem found is reported at once, one line each, naming the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainctl.config.compose import GROUPS
from trainctl.config.schemas.models import norm_conflict
from trainctl.config.schemas.run import TrainConfig
from trainctl.errors import UserError
from trainctl.metrics import known_metrics, unknown_metrics

def _finite_problems(key: str, value: Any) -> list[str]:
    """inf and nan parse as floats but no setting means them: say so now, not at the NaN guard mid-run."""
    values = value if isinstance(value, (list, tuple)) else [value]
    bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
    return [f"{key}={value} is not a finite number: give a real value"] if bad else []


FORM_NAMES = {"number": "a number", "numbers": "a list of numbers", "bool": "true, false"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _form_problems(key: str, value: Any, forms: list[str]) -> list[str]:
    """A field typed Any lists the forms it takes (`forms`): "number", "numbers" (a list) and literal words."""
    fits = (value is None or ("number" in forms and _is_number(value))
            or ("numbers" in forms and isinstance(value, (list, tuple)) and all(_is_number(v) for v in value))
            or ("bool" in forms and isinstance(value, bool))
            or (isinstance(value, str) and value in forms))
    if fits:
        return []
    accepted = [FORM_NAMES.get(form, form) for form in forms]
    return [f"{key}={value!r} is not allowed: give {', '.join(accepted[:-1])} or {accepted[-1]}, or null"]


INT64_MAX = 2**63 - 1  # torch and numpy hold integers in 64 bits: a larger one fails deep inside them


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _int64_problems(key: str, value: Any, meta: dict[str, Any]) -> list[str]:
    """An integer no 64-bit number holds (`model.hidden=[<150 digits>]`), where no range of its own names it."""
    listed = isinstance(value, (list, tuple))
    if any(limit in meta for limit in (("each_le", "each_lt") if listed else ("le", "lt"))):
        return []  # its own upper limit says more
    values = value if listed else [value]
    if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT64_MAX for v in values):
        return [f"{key}={_shown(value)} is too large: an integer setting holds at most {INT64_MAX:,} "
                "(a 64-bit number); give a smaller value"]
    return []


def _limit_problems(key: str, value: Any, meta: dict[str, Any]) -> list[str]:
    problems = _finite_problems(key, value) or _int64_problems(key, value, meta)
    if problems:
        return problems
    if "forms" in meta:
        problems = problems or _form_problems(key, value, meta["forms"])
    if problems or (isinstance(value, str) and "forms" in meta):
        return problems  # a word (loss.weight=balanced) has no range
    checks = {
        "ge": (lambda v, b: v >= b, ">="),
        "gt": (lambda v, b: v > b, ">"),
        "le": (lambda v, b: v <= b, "<="),
        "lt": (lambda v, b: v < b, "<"),
    }
    for name, (ok, sign) in checks.items():
        if name in meta and _is_number(value) and not ok(value, meta[name]):  # a list has its each_* limits
            problems.append(f"{key}={_shown(value)} is out of range: it must be {sign} {meta[name]}")
        each = f"each_{name}"
        if each in meta and isinstance(value, (list, tuple)):
            bad = [v for v in value if isinstance(v, (int, float)) and not ok(v, meta[each])]
            if bad:
                problems.append(f"{key}={list(value)} has {bad}: every item must be {sign} {meta[each]}")
    if "pattern" in meta and isinstance(value, str) and not re.fullmatch(meta["pattern"], value):
        problems.append(f"{key}={value!r} is not allowed: {meta['pattern_help']}")
    if "choices" in meta and value is not None and value not in meta["choices"]:  # None: an Optional's "unset"
        problems.append(f"{key}={value!r} is not allowed: choose one of {', '.join(meta['choices'])}")
    if isinstance(value, (list, tuple)):
        if "length" in meta and len(value) != meta["length"]:
            problems.append(f"{key}={list(value)} has {len(value)} item(s): it needs exactly {meta['length']}")
        if "min_items" in meta and len(value) < meta["min_items"]:
            problems.append(f"{key}={list(value)} needs at least {meta['min_items']} item(s)")
    return problems


def _unknown_keys(node: DictConfig, prefix: str, schema: type) -> list[str]:
    """Keys no schema declares (`+model.foo=1`): refused with the keys that exist, instead of ignored."""
    from trainctl.config.hydra_errors import unknown_key_message

    fields = [f.name for f in dataclasses.fields(schema)]
    return [unknown_key_message(f"{prefix}{key}", fields) for key in node.keys()
            if key not in fields and key != "_target_"]


TARGET_GROUPS = ("model", "dataset", "optimizer", "scheduler", "loss", "callbacks")  # where `_target_` is a component


def _walk(node: DictConfig, prefix: str, schema: type | None = None) -> list[str]:
    schema = schema or OmegaConf.get_type(node)
    if "_target_" in node and prefix.split(".")[0] not in TARGET_GROUPS:
        return [f"{prefix}_target_: {prefix.rstrip('.')} is trainctl's own setting, not a component you can replace; "
                f"_target_ works on {', '.join(TARGET_GROUPS)} (remove the +{prefix}_target_ override)"]
    if not dataclasses.is_dataclass(schema) or "_target_" in node:
        return []  # user components (`_target_`) carry no schema: their constructor validates them
    problems = _unknown_keys(node, prefix, schema)
    for f in dataclasses.fields(schema):
        key = f"{prefix}{f.name}"
        value = node.get(f.name)
        if isinstance(value, DictConfig):
            problems += _walk(value, key + ".")
            continue
        if isinstance(value, ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        elif value is not None and _takes_list(f.type) and not isinstance(value, (list, tuple)):
            # an interpolation (`model.hidden=${trainer.batch_size}`) is not type-checked by omegaconf
            problems.append(f"{key}={value!r} is not a list: {key} takes a list, e.g. {key}=[{value}]")
            continue
        problems += _limit_problems(key, value, dict(f.metadata))
    return problems


def _takes_list(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.replace("Optional[", "").startswith(("list[", "List[", "typing.List["))


def _resolution_problems(cfg: DictConfig) -> list[str]:
    """Interpolations (`${oc.env:HOME}`) resolved once, up front: a bad one is named here, not mid-run."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # omegaconf's resolution errors carry the key
        key = getattr(e, "full_key", None) or "a value"
        first = str(e).strip().splitlines()[0]
        return [f"{key} cannot be resolved: {first}"]
    return []


def _missing_groups(cfg: DictConfig) -> list[str]:
    """Groups with no option chosen: removed (`~model`), or left with only a preset's values for keys."""
    missing = [group for group in GROUPS if not isinstance(cfg.get(group), DictConfig)
               or ("name" not in cfg[group] and "_target_" not in cfg[group])]
    return [f"{group} has no option (was it removed with ~{group}?): choose one with {group}=NAME "
            f"(see `trainctl list {group}`)" for group in missing]


def _name_problems(cfg: DictConfig) -> list[str]:
    """`dataset.name=fashionmnist` on top of `dataset=blobs` would build one option from another's settings:
    the name must be one whose schema the group's settings follow (choose options with `group=NAME`)."""
    from trainctl.config.schemas import SCHEMAS

    problems = []
    for group in GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" in node:
            continue
        name, schema = node.get("name"), OmegaConf.get_type(node)
        expected = SCHEMAS.get(group, {}).get(name) if isinstance(name, str) else None
        if expected is not None and dataclasses.is_dataclass(schema) and expected is not schema:
            problems.append(f"{group}.name={name} does not fit the {group} option chosen (its settings are "
                            f"{schema.__name__}'s): choose the option with {group}={name}, not {group}.name")
    return problems


def _channel_problems(dataset: DictConfig) -> list[str]:
    """`dataset.mean`/`std` give one value per image channel (or one for all): a length that fits neither would
    fail to broadcast at the first batch. The channels come from the config alone (`config/dataset_shapes.py`)."""
    from trainctl.config.dataset_shapes import SPECS

    if dataset.get("name") not in SPECS or "_target_" in dataset or not dataset.get("normalize", False):
        return []
    shape = SPECS[dataset.name](dataset)["input_shape"]
    if len(shape) != 3:
        return []
    channels = shape[0]
    why = "dataset.grayscale=true gives" if dataset.get("grayscale") else f"{dataset.name} images have"
    problems = []
    for key in ("mean", "std"):
        values = dataset.get(key)
        if isinstance(values, ListConfig) and len(values) not in (1, channels):
            fix = (f"1 value, e.g. dataset.{key}=[0.5]" if channels == 1
                   else f"{channels} values (one per channel) or 1 (the same for all)")
            problems.append(f"dataset.{key}={list(values)} has {len(values)} values but {why} {channels} "
                            f"channel(s): give {fix}")
    return problems


def config_problems(cfg: DictConfig) -> list[str]:
    """Every out-of-range value and inconsistency in a composed config, as readable lines."""
    problems = _missing_groups(cfg) or _resolution_problems(cfg)
    if problems:
        return problems  # later checks read these values
    # The top level is walked against TrainConfig explicitly: copies of the config (Hydra's callbacks see a
    # masked copy) lose the schema type of the root node. Group nodes keep theirs.
    problems = _name_problems(cfg)
    if problems:
        return problems  # the other checks would read settings of the wrong option
    problems = _walk(cfg, "", TrainConfig)
    if isinstance(cfg.get("dataset"), DictConfig):
        problems += _channel_problems(cfg.dataset)
    objective = cfg.get("objective")
    if not (isinstance(objective, str) or (isinstance(objective, ListConfig) and len(objective) > 0
                                            and all(isinstance(o, str) for o in objective))):
        problems.append(f"objective={objective!r} must name a metric (e.g. val/acc) or a non-empty list of them")
        return problems
    known = known_metrics()
    for key, value in unknown_metrics(lambda key: OmegaConf.select(cfg, key), known):
        problems.append(f"{key}={value!r} is not a metric trainctl computes: choose one of {', '.join(known)}")
    model = cfg.get("model")
    if isinstance(model, DictConfig) and "_target_" not in model:
        problems += [p for p in [norm_conflict(model)] if p is not None]
    opt = cfg.get("optimizer")
    if opt is not None and opt.get("name") == "sgd" and opt.get("nesterov") and not opt.get("momentum"):
        problems.append("optimizer.nesterov=true needs optimizer.momentum > 0")
    return problems + _devices_problems(cfg)


def _devices_problems(cfg: DictConfig) -> list[str]:
    """trainer.devices: a whole number or auto; the settings that need several processes, or exclude them."""
    trainer = cfg.get("trainer")
    if not isinstance(trainer, DictConfig):
        return []
    devices = trainer.get("devices")
    if isinstance(devices, float) and not devices.is_integer():
        return [f"trainer.devices={devices} is not a whole number: give a number of processes or auto"]
    several = isinstance(devices, (int, float)) and devices > 1
    problems = []
    if several and cfg.get("cv") is not None and cfg.cv.folds > 1:
        problems.append(f"cv.folds={cfg.cv.folds} runs its folds in one process and does not combine with "
                        f"trainer.devices={devices}: set trainer.devices=1 (or cv.folds=1)")
    if several and trainer.batch_size % int(devices):
        problems.append(f"trainer.batch_size={trainer.batch_size} (the global batch) does not split evenly over "
                        f"trainer.devices={devices} processes: choose a multiple of {devices}")
    return problems


def override_problems(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """Values that composition coerced silently: `model.batch_norm=2` became true. A boolean setting takes
    true or false (yes/no/on/off), nothing else. `overrides` are the user's `key=value` strings."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf.nodes import BooleanNode

    problems = []
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return []  # Hydra reports unparsable overrides itself
    for override in parsed:
        if override.is_sweep_override() or override.is_delete() or override.value_type is None:
            continue
        key = override.key_or_group
        parent, _, leaf = key.rpartition(".")
        try:
            node = OmegaConf.select(cfg, parent) if parent else cfg
            child = node._get_node(leaf) if isinstance(node, DictConfig) and leaf in node else None
        except Exception:  # an unresolvable value: config_problems names it
            continue
        value = override.value()
        if isinstance(child, BooleanNode) and not isinstance(value, bool) and not (
                isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off")):
            problems.append(f"{key}={override.get_value_element_as_str()} is not a boolean: use true or false")
    return problems


def _raise_if_any(problems: list[str]) -> None:
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UserError(f"invalid config:\n{lines}\nFix the value(s) on the command line or in your config file.")


def validate(cfg: DictConfig, overrides: list[str] = ()) -> None:
    """Raise one UserError listing every problem in the config (nothing is written before this passes)."""
    _raise_if_any([*override_problems(cfg, list(overrides)), *config_problems(cfg)])


def validate_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Only the override checks, for callers whose config `train()` validates anyway (a multirun's job)."""
    _raise_if_any(override_problems(cfg, overrides))
