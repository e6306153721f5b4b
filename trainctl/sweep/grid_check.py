"""Every job of a grid multirun (Hydra's basic sweeper: `-m a=1,2 b=x,y`) composed and checked before the sweep
directory is made: a bad value in one job (`seed=-1,0`) is refused up front, naming the job, instead of stopping
the sweep halfway and leaving `multirun.yaml` behind. The optuna sweeper checks its space itself
(`trainctl.sweep.space_check`).
"""

from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig, OmegaConf

from trainctl.config.compose import raw_overrides
from trainctl.errors import UserError

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _jobs(config: DictConfig, loader: object) -> list[list[str]]:
    """The jobs' overrides, as the basic sweeper will expand them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    sweeper = config.hydra.sweeper
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    try:
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(
            [*params, *raw_overrides(config.hydra.overrides.task)])
        [jobs] = BasicSweeper.split_arguments(overrides, None)
    except HydraException as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"cannot expand the multirun: {first}. The default sweeper takes lists (a=1,2), "
                        "choice(), range() and glob(); for interval() use hydra/sweeper=optuna") from None
    return jobs


def check_grid(config: DictConfig, check: Callable[[DictConfig, list[str]], None]) -> None:
    """Compose each job of a basic-sweeper multirun and pass its config (less `hydra`) and overrides to `check`,
    which raises UserError; the error is told with the job's overrides."""
    from hydra.core.global_hydra import GlobalHydra

    from trainctl.config.hydra_errors import explain

    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != BASIC_SWEEPER or not GlobalHydra.instance().is_initialized():
        return
    batch = sweeper.get("max_batch_size")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise UserError(f"hydra.sweeper.max_batch_size={batch} is not valid: give an integer >= 1, or null")
    loader = GlobalHydra.instance().config_loader()
    jobs = _jobs(config, loader)
    for number, overrides in enumerate(jobs):
        where = f"job {number} of {len(jobs)} ({' '.join(overrides)})"
        try:
            job = loader.load_sweep_config(config, list(overrides))
        except Exception as e:  # Hydra's composition errors; anything else is a bug and keeps its traceback
            message = explain(e, list(overrides))
            if message is None:
                raise
            raise UserError(f"{where}: {message}") from None
        try:
            check(OmegaConf.masked_copy(job, [k for k in job.keys() if k != "hydra"]), list(overrides))
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
