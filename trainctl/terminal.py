"""The console a person reads: one rich Console for stdout, the log handler that shares it, and the end-of-run
summary table (no torch).

Off a terminal (CI, `| tee`, `nohup`, a file) nothing is laid out for a screen: the console has no width to wrap
or crop at, and log records are plain lines in train.log's format, so each one is one greppable line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

LOG_FORMAT = "[%(asctime)s][%(levelname)s] %(message)s"  # train.log's, and the console's off a terminal
UNWRAPPED = 1_000_000  # a console width no table or line reaches: nothing is cut or folded


def make_console(stderr: bool = False, **options: Any) -> Console:
    """A rich Console (emoji codes stay text: `a:x:`) that lays out for the screen only on a terminal; elsewhere
    tables take the width their contents need and lines are never folded, whatever COLUMNS says."""
    made = Console(stderr=stderr, emoji=False, **options)
    if not made.is_terminal:
        made.width = UNWRAPPED
    return made


console = make_console()


def console_handler() -> logging.Handler:
    """The console's log handler (named by conf/hydra/job_logging): on a terminal, Rich's, printing through the
    console the progress bar uses, so a record goes above the live bar rather than onto it; elsewhere one plain
    line per record, with ISO dates."""
    if console.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=console, show_path=False, markup=False, log_time_format="[%Y-%m-%d %H:%M:%S]")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


def summary_table(metrics: dict[str, Any], title: str = "trainctl run") -> Table:
    """The metrics as a two-column table. A path goes on a line of its own (`print_summary`), never in the table:
    a table wraps it mid-name when the screen is narrow."""
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


def per_class_table(accuracies: dict[str, float], title: str) -> Table:
    """Each class's accuracy, one row per class."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    for name, value in accuracies.items():
        table.add_row(str(name), f"{value:.4f}")
    return table


def print_summary(metrics: dict[str, Any], run_dir: Path, label: str = "run", title: str = "trainctl run") -> None:
    """The summary table, then `label: <path>` on one line, never wrapped or cropped whatever the width, so
    the path can be copied whole (into `resume=`, `ckpt=`, `tensorboard --logdir`)."""
    console.print(summary_table(metrics, title))
    console.print(f"{label}: {run_dir}", soft_wrap=True, markup=False, highlight=False)
