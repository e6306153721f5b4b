"""The console a person reads: one rich Console for stdout and the end-of-run summary table (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=False)


def summary_table(metrics: dict[str, Any], run_dir: Path) -> Table:
    table = Table(title=f"trainctl run: {run_dir}", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        if isinstance(value, float):
            value = f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
        if not isinstance(value, (list, dict)):
            table.add_row(name, str(value))
    return table
