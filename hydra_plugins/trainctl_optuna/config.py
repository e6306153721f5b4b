"""Config of `hydra/sweeper=optuna`, stored in Hydra's ConfigStore when Hydra scans its plugins.

No `from __future__ import annotations` here: Hydra's plugin scan runs this module without entering it in
sys.modules, and dataclasses would then fail to resolve string annotations.
"""


from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class TrainctlOptunaSweeperConf:
    _target_: str = "hydra_plugins.trainctl_optuna.optuna_sweeper.TrainctlOptunaSweeper"
    # maximize | minimize, or a list (one per metric of a list-valued `objective`) for multi-objective search;
    # null: each metric's own direction (accuracies up, losses and errors down)
    direction: Any = None
    n_trials: int = 20  # the study's total: running the same command again continues up to this number
    n_jobs: int = 1  # trials at once; > 1 needs a parallel launcher (hydra/launcher=joblib)
    sampler: str = "tpe"  # tpe | random | cmaes | grid | qmc | nsgaii
    seed: Optional[int] = "${seed}"  # type: ignore[assignment]
    pruner: str = "median"  # median | hyperband | successive_halving | none
    pruner_startup_trials: int = 5  # median pruner: trials that finish before any pruning
    pruner_warmup_epochs: int = 1  # median pruner: epochs a trial runs before it can be pruned
    # null: SQLite file in the sweep dir | memory | journal (file in the sweep dir) | journal:PATH | a database URL
    storage: Optional[str] = None
    study_name: Optional[str] = None  # null: <model>-<dataset>-<hash of the command's overrides>
    sweep_dir: Optional[str] = None  # null: runs/optuna/<study_name>
    max_failure_rate: float = 0.25  # stop when failed trials exceed this share of n_trials
    dry_run: bool = False  # print the search space and the first trials' overrides, train nothing
    params: Dict[str, str] = field(default_factory=dict)  # search space, in Hydra's sweep grammar


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=TrainctlOptunaSweeperConf,
                             provider="trainctl")
