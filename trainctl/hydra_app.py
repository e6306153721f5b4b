"""The Hydra entry of `trainctl train`: a thin wrapper that calls `train(cfg)` and returns the objective.

Checks that need no output directory (ranges, the device, data presence) run in a Hydra callback before Hydra
creates the run directory, so a bad command writes nothing. Inside a multirun each job is checked again by
`train()`; a job that fails such a check has its (empty) directory removed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from trainctl.config import config_dir, register_schemas
from trainctl.errors import UserError
from trainctl.rundir import token

EXIT_USER_ERROR = 2


def report_user_error(error: UserError) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)


def preflight(cfg: DictConfig) -> None:
    """Validate a composed config without writing anything; raises UserError."""
    from trainctl.validate import validate

    validate(cfg)
    from trainctl.components.datasets import check_available
    from trainctl.device import select_device

    select_device(cfg.device.name)
    check_available(cfg.dataset)


class Preflight(Callback):
    """Runs `preflight` on the composed config before Hydra makes the run or sweep directory."""

    def _check(self, config: DictConfig) -> None:
        task_cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
        try:
            preflight(task_cfg)
        except UserError as e:
            report_user_error(e)
            sys.exit(EXIT_USER_ERROR)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)  # swept values are checked per job, in train()


def _task(cfg: DictConfig) -> float:
    from trainctl.loop import train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = train(cfg, run_dir=run_dir)
    except UserError as e:
        report_user_error(e)
        if not (run_dir / "checkpoints").exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # only Hydra's config copy and an empty log were there
        sys.exit(EXIT_USER_ERROR)
    return float(result["objective_value"])


def run_train(args: list[str]) -> int:
    """Hand `args` to Hydra exactly as a `@hydra.main` script would receive them."""
    if not OmegaConf.has_resolver("trainctl_token"):
        OmegaConf.register_new_resolver("trainctl_token", token, use_cache=True)  # cached: one value per run
    register_schemas()
    main = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")(_task)
    sys.argv = ["trainctl train", *args]
    main()
    return 0
