"""The console a person reads: one rich Console for stdout and the end-of-run summary table (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=False, emoji=False)  # a path or value such as `a:x:` stays text


def summary_table(metrics: dict[str, Any], run_dir: Path | None = None) -> Table:
    """The metrics as a two-column table. A path in its title wraps with the table (mid-name, when stdout is a
    pipe): `print_summary` puts it on a line of its own instead."""
    title = f"trainctl run: {run_dir}" if run_dir is not None else "trainctl run"
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        if isinstance(value, float):
            value = f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
        if isinstance(value, dict) and "verdict" in value:
            value = value["verdict"]  # the diagnosis: its reason and numbers are in the log and metrics.json
        if not isinstance(value, (list, dict)):
            table.add_row(name, str(value))
    return table


def print_summary(metrics: dict[str, Any], run_dir: Path, label: str = "run") -> None:
    """The summary table, then `label: <path>` on one line, never wrapped or cropped whatever the width, so
    the path can be copied whole (into `resume=`, `ckpt=`, `tensorboard --logdir`)."""
    console.print(summary_table(metrics))
    console.print(f"{label}: {run_dir}", soft_wrap=True, markup=False, highlight=False)
