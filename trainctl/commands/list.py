"""`trainctl list [GROUP]`: every option of every config group, with its description and its defaults.

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


def run_list(args: list[str]) -> int:
    groups = [*GROUPS, *PRESET_GROUPS]
    if args and args[0] in ("-h", "--help"):
        print("usage: trainctl list [GROUP]\n\nGROUP is one of: " + ", ".join(groups))
        return 0
    if len(args) > 1:
        raise UserError(f"trainctl list takes one group at most, not {' '.join(args)}: e.g. trainctl list model")
    if args:
        if args[0] not in groups:
            raise UserError(f"unknown group '{args[0]}'{did_you_mean(args[0], groups)} (groups: {', '.join(groups)})")
        groups = [args[0]]
    console = Console(emoji=False)
    for group in groups:
        table = Table(title=f"{group}  (choose with {group}=NAME)", title_justify="left", show_lines=False)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("description")
        table.add_column("defaults (override as group.key=value)" if group not in PRESET_GROUPS else "", style="dim")
        for name, description, params in rows(group):
            table.add_row(escape(name), escape(description), escape(params))
        console.print(table)
    return 0
