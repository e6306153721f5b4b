"""The Hydra Sweeper class; a thin shell around `trainctl.sweep.driver.SweepDriver`."""

from __future__ import annotations

import sys
from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.trainctl_optuna.config import TrainctlOptunaSweeperConf  # noqa: F401  (registers the config)


def check_known_settings(settings: dict[str, Any]) -> None:
    """`+hydra.sweeper.bogus=1` reaches the sweeper as a setting nothing reads: refuse it, naming the real ones."""
    import dataclasses

    from trainctl.config.hydra_errors import unknown_key_message
    from trainctl.errors import UserError

    known = [f.name for f in dataclasses.fields(TrainctlOptunaSweeperConf) if not f.name.startswith("_")]
    unknown = [k for k in settings if k not in known and not k.startswith("_")]
    if unknown:
        raise UserError(unknown_key_message(f"hydra.sweeper.{unknown[0]}", known))


class TrainctlOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from trainctl.errors import EXIT_USER_ERROR, UserError, report_user_error
        from trainctl.sweep.driver import SweepDriver

        try:
            check_known_settings(self.settings)
            return SweepDriver(self.settings, self.config, self.launcher).run(arguments)
        except UserError as e:
            report_user_error(e)
            sys.exit(EXIT_USER_ERROR)
