"""`trainctl list [GROUP]`: every registered component with a one-line description and its main parameters."""

from __future__ import annotations

from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trainctl.config.compose import GROUPS, config_dir
from trainctl.errors import UserError
from trainctl.registry import did_you_mean

DEVICE_HELP = {
    "auto": "The best device present: cuda > mps > cpu.",
    "cpu": "The CPU (always present).",
    "cuda": "An NVIDIA GPU through CUDA.",
    "mps": "An Apple-silicon GPU through Metal.",
}


def _params(group: str, name: str, config: object = None) -> str:
    """`key=value` pairs from the option's YAML file, or a plugin's config (what a user gets by default)."""
    path = config_dir() / group / f"{name}.yaml"
    if path.is_file():
        node = OmegaConf.load(path)
    elif config is not None:
        node = OmegaConf.structured(config)
    else:
        return ""
    values = {k: v for k, v in OmegaConf.to_container(node).items() if k not in ("defaults", "name")}
    return "  ".join(f"{k}={_override_text(v)}" for k, v in values.items())


def _override_text(value: object) -> str:
    """A value as it would be typed in an override: null, true, [16, 32]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_override_text(v) for v in value) + "]"
    return str(value)


def rows(group: str) -> list[tuple[str, str, str]]:
    """(name, description, parameters) for each option of a group."""
    if group == "device":
        return [(name, text, "") for name, text in DEVICE_HELP.items()]
    from trainctl.components import REGISTRIES

    return [(e.name, e.description, _params(group, e.name, e.config)) for e in REGISTRIES[group]]


def run_list(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print("usage: trainctl list [GROUP]\n\nGROUP is one of: " + ", ".join(GROUPS))
        return 0
    groups = list(GROUPS)
    if args:
        if args[0] not in GROUPS:
            raise UserError(f"unknown group '{args[0]}'{did_you_mean(args[0], groups)} (groups: {', '.join(groups)})")
        groups = [args[0]]
    console = Console()
    for group in groups:
        table = Table(title=f"{group}  (choose with {group}=NAME)", title_justify="left", show_lines=False)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("description")
        table.add_column("main parameters (override as group.key=value)", style="dim")
        for name, description, params in rows(group):
            table.add_row(escape(name), escape(description), escape(params))
        console.print(table)
    return 0
