"""Catch a mistyped config-group choice (`model=cnnn`) before Hydra does, with a did-you-mean.

Hydra's own message for this lists the whole search path; ours names the group, the closest valid option and
all valid ones. Options come from the packaged config tree plus any user config dirs on the command line
(`-cd DIR`, `hydra.searchpath=[...]`); anything this cannot judge (globs, package searchpaths) is left to Hydra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainctl.config.compose import GROUPS, group_options
from trainctl.errors import UserError
from trainctl.registry import did_you_mean

CHECKED_GROUPS = (*GROUPS, "experiment", "sweep", "hparams_search", "callbacks", "debug")
# Groups whose default is no option at all (null): `~group` has nothing to remove but the user's own choice.
EMPTY_BY_DEFAULT = ("experiment", "sweep", "hparams_search", "debug")
FLAGS_WITH_VALUE = {"-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name", "-c", "--cfg",
                    "-p", "--package", "-sc", "--shell-completion", "--experimental-rerun"}


def _user_config_dirs(args: list[str]) -> tuple[list[Path], bool]:
    """Config dirs the user added, and whether a search path exists that we cannot list (pkg://)."""
    dirs: list[Path] = []
    opaque = False
    for i, arg in enumerate(args):
        if arg in ("-cd", "--config-dir") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            for item in arg.split("=", 1)[1].strip("[]").split(","):
                item = item.strip().strip("'\"")
                if item.startswith("pkg://"):
                    opaque = True
                elif item:
                    dirs.append(Path(item.removeprefix("file://")))
        elif arg in ("-cp", "--config-path") or arg.startswith("--config-path="):
            opaque = True  # a different primary config tree altogether
    return dirs, opaque


def _choices(args: list[str]) -> list[tuple[str, str]]:
    """(group, value) pairs of plain group overrides, sweep lists split."""
    pairs = []
    skip_next = False
    for arg in args:
        if skip_next or arg.startswith("-"):
            skip_next = arg in FLAGS_WITH_VALUE
            continue
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if sep and value.startswith("[") and value.endswith("]"):  # a list of options: `+callbacks=[a,b]`
            value = value[1:-1]
        if not sep or key not in CHECKED_GROUPS or any(c in value for c in "()[]{}*$"):
            continue
        pairs += [(key, v.strip()) for v in value.split(",") if v.strip() not in ("", "null")]
    return pairs


def _sweep_overrides(args: list[str]) -> list[object]:
    """The sweep overrides among `args` (`a=1,2`, `b=range(..)`, `c=glob(..)`), parsed; flags and anything
    Hydra cannot parse are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    found, skip_next = [], False
    for arg in args:
        if skip_next or arg.startswith("-"):
            skip_next = arg in FLAGS_WITH_VALUE
            continue
        try:
            override = parser.parse_override(arg)
        except Exception:  # Hydra names the override it cannot parse
            continue
        if override.is_sweep_override():
            found.append(override)
    return found


def check_sweeps_expand(args: list[str]) -> None:
    """A sweep value that expands to no value (`optimizer.lr=glob(*)`, `x=range(1,1)`) would launch no job and
    exit 0 as if it had trained: refuse it, naming the override."""
    from hydra.core.override_parser.types import Glob

    extra_dirs, opaque = _user_config_dirs(args)
    for override in _sweep_overrides(args):
        key, value = override.key_or_group, override.value()
        if isinstance(value, Glob):
            if opaque:
                continue
            options = group_options(key, tuple(extra_dirs))
            if not options:
                raise UserError(f"{override.input_line} selects nothing: glob() picks options of a config group "
                                f"({', '.join(CHECKED_GROUPS)}) and {key} is not one; list values instead, "
                                f"e.g. {key}=0.1,0.01 or {key}=choice(0.1,0.01)")
            if not value.filter(options):
                raise UserError(f"{override.input_line} matches no option of {key} (options: {', '.join(options)})")
        elif override.is_discrete_sweep():
            try:
                empty = next(iter(override.sweep_string_iterator()), None) is None
            except ValueError as e:  # range(1,3,0)
                raise UserError(f"{override.input_line}: {e}; give range(start, stop, step) a step that is "
                                "not 0") from None
            if empty:
                raise UserError(f"{override.input_line} expands to no value, so the sweep would run no job: "
                                "make the range's end lie beyond its start (the end is excluded)")
    if not _optuna_search(args):
        _check_grid_size(_sweep_overrides(args))


MAX_GRID_JOBS = 10_000  # a grid larger than this is a typo (range(0,100000000)) or wants the optuna sweeper


def _optuna_search(args: list[str]) -> bool:
    """Whether the command asks for the optuna sweeper, whose range() is a distribution (any size), not a list."""
    return any(a.lstrip("+").split("=", 1)[0] in ("hydra/sweeper", "sweep", "hparams_search") for a in args)


def _check_grid_size(sweeps: list[object]) -> None:
    import math

    from hydra.core.override_parser.types import RangeSweep

    sizes = []
    for override in sweeps:
        value = override.value()
        if isinstance(value, RangeSweep) and value.step:
            sizes.append(max(0, math.ceil((value.stop - value.start) / value.step)))
        elif override.is_discrete_sweep():
            sizes.append(sum(1 for _ in override.sweep_string_iterator()))
    jobs = math.prod(sizes) if sizes else 0
    if jobs > MAX_GRID_JOBS:
        largest = max(zip(sizes, (o.input_line for o in sweeps)))[1]
        raise UserError(f"this grid multirun would launch {jobs:,} jobs (more than {MAX_GRID_JOBS:,}; the largest "
                        f"list is {largest}): list fewer values, or search the space with hydra/sweeper=optuna and "
                        "hydra.sweeper.n_trials=N")


def _options(group: str, extra_dirs: tuple[Path, ...] = ()) -> list[str]:
    """A group's options; `hparams_search` (lightning-hydra-template's name) also offers the `sweep` presets,
    which `register_schemas` stores under it only once Hydra is about to compose."""
    options = group_options(group, extra_dirs)
    if group == "hparams_search":
        options = sorted({*options, *group_options("sweep")})
    return options


def check_keys(args: list[str]) -> None:
    """An override with no key (`=1`, `+=x`, `~`, `@=1`) would reach Hydra's internals as a group override."""
    skip_next = False
    for arg in args:
        if arg == "--":  # argparse drops it, or not, depending on the Python version and where it stands
            raise UserError("`--` is not an override: trainctl train takes key=value overrides and Hydra's flags "
                            "as they are; remove the `--`.")
        if skip_next or arg.startswith("-"):
            skip_next = arg in FLAGS_WITH_VALUE
            continue
        key, sep, value = arg.partition("=")
        if not key.lstrip("+~").strip() and (sep or key):
            raise UserError(f"the override '{arg}' names no key: write key=value, e.g. trainer.epochs=3")
        group, at, _ = key.lstrip("+~").partition("@")
        if at and not group.strip():
            raise UserError(f"the override '{arg}' names no config group before '@' (group@package=option): "
                            "write group=option, e.g. model=mlp")
        check_hydra_key(key.lstrip("+~"), arg)
        _check_group_prefix(key, value, sep, args)
        if key.lstrip("+") in ("hydra.run.dir", "hydra.sweep.dir") and sep and not value.strip().strip("'\"").strip():
            raise UserError(f"{arg}: an empty output directory would put the run's files in the working directory; "
                            f"give a path, e.g. {key.lstrip('+')}=runs/mine, or leave it out")
        if key.startswith("~") and key.lstrip("~") not in CHECKED_GROUPS and not key.startswith("~hydra"):
            # `~seed`, `~trainer.epochs`: every setting of the typed config is read by the run; removing one
            # fails deep inside composition. A group (`~callbacks`) may be removed: validation names the gap.
            name = key.lstrip("~")
            raise UserError(f"{arg}: trainctl's settings can be changed but not removed; set {name}=<value> "
                            f"instead (`trainctl train --cfg job` shows the current values; null where allowed).")


def check_hydra_key(key: str, arg: str) -> None:
    """A `hydra.*` key must name a setting of Hydra's own config: `+hydra.foo=1` would otherwise be added to it
    and read by nothing. Below a free-form node (the sweeper's, the launcher's, a logging config, `job.env_set`)
    any key may be added; the sweeper checks its own."""
    import dataclasses
    import typing

    from hydra.conf import HydraConf

    from trainctl.config.hydra_errors import unknown_key_message

    if not key.startswith("hydra."):
        return
    node: Any = HydraConf
    parts = key.split(".")
    for depth, part in enumerate(parts[1:], start=2):
        if not dataclasses.is_dataclass(node):
            return
        fields = typing.get_type_hints(node)
        if part not in fields:
            raise UserError(unknown_key_message(".".join(parts[:depth]), list(fields), arg.partition("=")[2])
                            + " Hydra's settings: `trainctl train --cfg hydra`; trainctl's: `trainctl train --cfg job`.")
        node = fields[part]
        if typing.get_origin(node) is typing.Union:  # Optional[X]
            node = next((a for a in typing.get_args(node) if a is not type(None)), None)


def _check_group_prefix(key: str, value: str, sep: str, args: list[str]) -> None:
    """`+model=mlp` (add a choice to a group that has one) and `~experiment` (remove a choice that is empty
    unless given): Hydra's words for the first are YAML's, and the second silently trains the default config."""
    if any(a in ("-cp", "--config-path", "-cn", "--config-name") or a.startswith(("--config-path=", "--config-name="))
           for a in args):
        return  # another primary config: its defaults are not trainctl's
    name = key.lstrip("+~")
    if key.startswith("+") and sep and name in CHECKED_GROUPS:
        raise UserError(f"{key}={value}: {name} already has a choice in trainctl's defaults, and `+` adds a "
                        f"second one; write {name}={value} (without +) to choose {value}.")
    if key.startswith("~") and name in EMPTY_BY_DEFAULT:
        given = next((a for a in args if a.lstrip("+").partition("=")[0] == name), None)
        what = f"it drops the {given} you gave" if given else f"{name} is empty unless you choose one"
        raise UserError(f"{key}{sep}{value}: {what}, so the run would fall back to trainctl's default config "
                        f"(model=cnn on fashionmnist); leave {name}= out to run without one.")


def expand_device_index(args: list[str]) -> list[str]:
    """`device=cuda:1` (how PyTorch names a GPU) as the config tree holds it: `device=cuda device.index=1`;
    `-m device=cuda:0,cuda:1` sweeps the index. The index is checked against the GPUs present later."""
    expanded = []
    for arg in args:
        key, sep, value = arg.partition("=")
        items = [v.strip() for v in value.split(",")]
        kinds = {v.partition(":")[0] for v in items}
        if key.lstrip("+") in ("device", "device.name") and sep and ":" in value and len(kinds) == 1:
            kind = kinds.pop()
            indexes = [v.partition(":")[2] for v in items]
            if all(i.isdigit() for i in indexes):
                expanded += [f"{key}={kind}", f"device.index={','.join(indexes)}"]
                continue
            raise UserError(f"{arg}: the part after ':' must be a device number, e.g. device={kind}:0")
        expanded.append(arg)
    return expanded


def check_config_dirs(args: list[str]) -> None:
    """A config dir (`-cd`, `hydra.searchpath`) that does not exist would only draw a warning from Hydra, and the
    options the user meant to add would then be missing."""
    for folder in _user_config_dirs(args)[0]:
        if not folder.expanduser().is_dir():
            raise UserError(f"the config directory {folder} (from -cd/--config-dir or hydra.searchpath) does not "
                            "exist or is not a folder: check the path")


def check_group_choices(args: list[str]) -> None:
    check_keys(args)
    check_config_dirs(args)
    check_sweeps_expand(args)
    pairs = _choices(args)
    if not pairs:
        return
    extra_dirs, opaque = _user_config_dirs(args)
    if opaque:
        return
    for group, value in pairs:
        options = _options(group, tuple(extra_dirs))
        if value not in options:
            raise UserError(
                f"unknown {group} '{value}'{did_you_mean(value, options)} (valid: {', '.join(options)}). "
                f"See `trainctl list {'sweep' if group == 'hparams_search' else group}`."
            )


SAFE_UNQUOTED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%~")
PATH_KEYS = ("resume", "init_from", "ckpt", "dataset.root")  # keys whose values are file paths a user pastes


def quote_value(value: str) -> str:
    """A value as a Hydra override can carry it whatever it holds: single-quoted, quotes escaped, and `${`
    escaped so that a path is never read as an interpolation."""
    return "'" + value.replace("'", "\\'").replace("${", "\\${") + "'"


def quote_paths(args: list[str]) -> list[str]:
    """Quote path values (`resume=/data/runs/été's run`) that Hydra's override lexer would reject or
    misread: any character beyond letters, digits and path punctuation, or a `${`."""
    quoted = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in PATH_KEYS and value and value[0] not in "'\"" and not set(value) <= SAFE_UNQUOTED:
            arg = f"{key}={quote_value(value)}"
        quoted.append(arg)
    return own_dataset_keys(quoted)


def own_dataset_keys(args: list[str]) -> list[str]:
    """`dataset.train_size=N` (and trainctl's other dataset keys) typed without a `+` also on a `_target_`
    dataset, whose config file need not list them: passed as `++` (set or add). On a built-in dataset whose schema
    lacks the key (`dataset.mean` on `sine`) the validation refuses it, as it refuses any unknown key."""
    from trainctl.config.schemas.datasets import TARGET_DATASET_KEYS

    own = {f"dataset.{k}" for k in TARGET_DATASET_KEYS}
    return [f"++{arg}" if not arg.startswith(("+", "~", "-")) and arg.partition("=")[0] in own and "=" in arg
            else arg for arg in args]


def unquote_value(value: str) -> str:
    """The inverse of `quote_value`, for code that reads a path override before Hydra does."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0]).replace("\\${", "${")
    return value
