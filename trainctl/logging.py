"""Run outputs a person reads: TensorBoard scalars, the log file, the live progress bar and the summary table."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

log = logging.getLogger("trainctl")
console = Console(stderr=False)


class TensorBoardLog:
    """Per-epoch scalars (train/val loss and accuracy, learning rate, throughput) and the config as text."""

    def __init__(self, run_dir: Path, cfg: DictConfig, resumed_at: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # On resume, purge_step makes TensorBoard drop what the interrupted run logged from that epoch on,
        # so every step keeps exactly one value.
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=resumed_at)
        if resumed_at is None:
            self.writer.add_text("config", "```yaml\n" + OmegaConf.to_yaml(cfg, resolve=True) + "```", 0)

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


@contextlib.contextmanager
def run_log_file(run_dir: Path) -> Iterator[None]:
    """Send trainctl's log lines to `<run_dir>/train.log` when Hydra is not already doing so (plain `train()`)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        yield
        return
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    previous = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
        handler.close()


def progress_bar(enabled: bool) -> Progress:
    """A live bar (epoch, steps, loss, images/s) on terminals; nothing at all in pipes and CI logs."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]} img/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=True,
    )


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
