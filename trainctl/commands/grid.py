"""The end of a grid multirun (Hydra's own sweeper): the leaderboard on the console and results.csv in the sweep
directory (trainctl/sweep/grid.py). An Optuna sweep writes its own results, so it is left alone here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


class GridResults(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
            return
        from trainctl.sweep.grid import print_leaderboard, write_results

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            keys, jobs, objectives, _ = write_results(sweep_dir)
        except OSError as e:  # the jobs' results are all in place: only the summary is missing
            logging.getLogger("trainctl").warning("could not write %s/results.csv (%s)", sweep_dir, e)
            return
        print_leaderboard(sweep_dir, keys, jobs, objectives)
