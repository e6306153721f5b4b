"""trainctl from Python: `train(cfg) -> metrics`, with or without Hydra (compose a config with
`trainctl.config.compose.compose`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from trainctl.callbacks import all_callbacks
from trainctl.engine.events import Callback
from trainctl.engine.run import run


def train(cfg: DictConfig, run_dir: Path | str | None = None, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train as the config says into `run_dir` (a fresh `runs/...` directory when None); returns metrics.json's
    content. `callbacks` are added after trainctl's own and the config's."""
    return run(cfg, run_dir, lambda: [*all_callbacks(cfg), *callbacks])
