"""`trainctl list [GROUP [OPTION]]`: every option of every config group, with its description and its defaults;
with an option, each of its keys with its default, help text and accepted values (from the schema's fields).

Read from the config tree (each option's YAML opens with its description) and the typed schemas, so listing
needs no torch; options that installed plugins add come from the ConfigStore and their registry entries.
"""

from __future__ import annotations

from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trainctl.config.compose import GROUPS, group_options, option_defaults, option_description
from trainctl.errors import UserError
from trainctl.registry import did_you_mean
from trainctl.terminal import make_console

PRESET_GROUPS = ("experiment", "sweep", "callbacks", "debug")  # listed by name and description: their content is a diff


def _override_text(value: object) -> str:
    """A value as it would be typed in an override: null, true, [16, 32]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_override_text(v) for v in value) + "]"
    return str(value)


def _plugin_description(group: str, name: str) -> str:
    """A plugin option has no YAML file: its registry entry describes it (plugins are loaded by now)."""
    from trainctl.components import REGISTRIES

    registry = REGISTRIES.get(group)
    return registry.entry(name).description if registry is not None and name in registry else ""


def rows(group: str) -> list[tuple[str, str, str]]:
    """(name, description, parameters) for each option of a group."""
    result = []
    for name in group_options(group):
        description = option_description(group, name) or _plugin_description(group, name)
        params = ""
        if group not in PRESET_GROUPS:
            values = OmegaConf.to_container(option_defaults(group, name))
            params = "  ".join(f"{k}={_override_text(v)}" for k, v in values.items() if k != "name")
        result.append((name, description, params))
    return result


LIMITS = {"ge": ">= {}", "gt": "> {}", "le": "<= {}", "lt": "< {}", "each_ge": "each >= {}", "length": "{} items",
          "min_items": "at least {} item(s)"}


def _accepts(meta: dict[str, object], default: object) -> str:
    """What a key accepts, from its schema field's metadata: choices and limits, as the validator checks them
    (a null default means the key may stay null)."""
    choices = [*map(str, meta.get("choices", [])), *(["null"] if default is None else [])]
    parts = [f"one of {'|'.join(choices)}"] if "choices" in meta else []
    parts += [text.format(meta[name]) for name, text in LIMITS.items() if name in meta]
    return "; ".join(parts)


def key_rows(group: str, name: str) -> list[tuple[str, str, str]]:
    """(key, default, help and accepted values) for each setting of one option, from its typed schema."""
    import dataclasses

    from trainctl.config.schemas import SCHEMAS

    if name not in group_options(group):
        raise UserError(f"unknown {group} '{name}'{did_you_mean(name, group_options(group))} "
                        f"(see `trainctl list {group}`)")
    values = OmegaConf.to_container(option_defaults(group, name))
    fields = {f.name: dict(f.metadata) for f in dataclasses.fields(SCHEMAS[group][name])} \
        if name in SCHEMAS.get(group, {}) else {}
    result = []
    for key, value in values.items():
        if key == "name":  # the option itself, chosen with group=NAME
            continue
        meta = fields.get(key, {})
        accepts = _accepts(meta, value)
        about = " ".join(part for part in (str(meta.get("help", "")), f"({accepts})" if accepts else "") if part)
        result.append((f"{group}.{key}", _override_text(value), about))
    return result


SECTIONS = ("trainer", "checkpoint", "early_stopping", "cv", "tensorboard")  # top-level keys with settings of their own


def section_rows(section: str) -> list[tuple[str, str, str]]:
    """(key, default, help and accepted values) for each setting of a top-level section (`trainctl list trainer`)."""
    import dataclasses

    from trainctl.config.schemas.run import TrainConfig

    schema = next(f for f in dataclasses.fields(TrainConfig) if f.name == section).default_factory()
    result = []
    for field in dataclasses.fields(schema):
        meta, value = dict(field.metadata), getattr(schema, field.name)
        accepts = _accepts(meta, value)
        about = " ".join(part for part in (str(meta.get("help", "")), f"({accepts})" if accepts else "") if part)
        result.append((f"{section}.{field.name}", _override_text(value), about))
    return result


def _print_section(console: Console, section: str) -> None:
    table = Table(title=f"{section}: settings of the run (override as key=value)", title_justify="left")
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("default", style="dim")
    table.add_column("what it sets")
    for key, default, about in section_rows(section):
        table.add_row(escape(key), escape(default), escape(about))
    console.print(table)


def _print_keys(console: Console, group: str, name: str) -> None:
    table = Table(title=f"{group}={name}: {option_description(group, name)}", title_justify="left")
    table.add_column("key (override as key=value)", style="bold cyan", no_wrap=True)
    table.add_column("default", style="dim")
    table.add_column("what it sets")
    for key, default, about in key_rows(group, name):
        table.add_row(escape(key), escape(default), escape(about))
    console.print(table)


def run_list(args: list[str]) -> int:
    groups = [*GROUPS, *PRESET_GROUPS]
    if args and args[0] in ("-h", "--help"):
        print("usage: trainctl list [GROUP [OPTION]]\n\nGROUP is one of: " + ", ".join(groups)
              + "\nWith an OPTION (trainctl list model cnn): each of its keys, default and what it sets."
              + "\nOr a section of the run's settings: " + ", ".join(SECTIONS) + " (trainctl list trainer).")
        return 0
    if len(args) == 1 and args[0] in SECTIONS:
        _print_section(make_console(), args[0])
        return 0
    if len(args) > 1 and args[0] in SECTIONS:  # a section has keys, not options: `list trainer epochs`
        raise UserError(f"{args[0]} is a section of the run's settings, with no options to pick: "
                        f"trainctl list {args[0]} shows all its keys ({' '.join(args[1:])} is not needed)")
    if len(args) > 2 or (len(args) == 2 and args[0] in PRESET_GROUPS):
        raise UserError(f"trainctl list takes a group and, for {', '.join(GROUPS)}, an option, not "
                        f"{' '.join(args)}: e.g. trainctl list model cnn")
    if args:
        if args[0] not in groups:
            raise UserError(f"unknown group '{args[0]}'{did_you_mean(args[0], groups)} (groups: {', '.join(groups)})")
        groups = [args[0]]
    console = make_console()
    if len(args) == 2:
        _print_keys(console, args[0], args[1])
        return 0
    for group in groups:
        table = Table(title=f"{group}  (choose with {group}=NAME)", title_justify="left", show_lines=False)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("description")
        table.add_column("defaults (override as group.key=value)" if group not in PRESET_GROUPS else "", style="dim")
        for name, description, params in rows(group):
            table.add_row(escape(name), escape(description), escape(params))
        console.print(table)
    return 0
