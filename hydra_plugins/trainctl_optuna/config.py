"""Config of `hydra/sweeper=optuna`, stored in Hydra's ConfigStore when Hydra scans its plugins.

No `from __future__ import annotations` here: Hydra's plugin scan runs this module without entering it in
sys.modules, and dataclasses would then fail to resolve string annotations.
"""


from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, open_dict, read_write

TARGET = "hydra_plugins.trainctl_optuna.optuna_sweeper.TrainctlOptunaSweeper"
# hydra-optuna-sweeper's class, named by the configs lightning-hydra-template users bring
HYDRA_OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


@dataclass
class TrainctlOptunaSweeperConf:
    _target_: str = TARGET
    # Hydra passes `sampler: {_target_: ...}` to the sweeper as written, never building it: trainctl checks a
    # sampler's class and arguments before anything is called
    _recursive_: bool = False
    # maximize | minimize, or a list (one per metric of a list-valued `objective`) for multi-objective search;
    # null: each metric's own direction (accuracies up, losses and errors down)
    direction: Any = None
    n_trials: int = 20  # the study's total: running the same command again continues up to this number
    n_jobs: int = 1  # trials at once; > 1 needs a parallel launcher (hydra/launcher=joblib)
    # with n_jobs > 1 on GPUs: the share of a GPU each trial takes; 1: a GPU of its own, 0.5: two trials per GPU
    gpus_per_trial: float = 1.0
    # tpe | random | cmaes | grid | qmc | nsgaii, or {_target_: optuna.samplers.TPESampler, n_startup_trials: 10, ...}
    sampler: Any = "tpe"
    seed: Optional[int] = "${seed}"  # type: ignore[assignment]
    # median | hyperband | successive_halving | none, or {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 2, ...}
    pruner: Any = "median"
    pruner_startup_trials: int = 5  # median pruner: trials that finish before any pruning
    pruner_warmup_epochs: int = 1  # median pruner: epochs a trial runs before it can be pruned
    # null: SQLite file in the sweep dir | memory | journal (file in the sweep dir) | journal:PATH | a database URL
    storage: Optional[str] = None
    study_name: Optional[str] = None  # null: <model>-<dataset>-<hash of the command's overrides>
    sweep_dir: Optional[str] = None  # null: runs/optuna/<study_name>
    max_failure_rate: float = 0.25  # stop when failed trials exceed this share of n_trials
    timeout: Optional[float] = None  # seconds; after it no new trial starts (running ones finish). null: no limit
    # database studies: a running trial's heartbeat, every heartbeat_interval seconds (null: none); a trial silent
    # for grace_period seconds (null: 2 x heartbeat_interval) lost its process, and the next sweep marks it FAIL
    heartbeat_interval: Optional[int] = 60
    grace_period: Optional[int] = None
    # known-good points tried first, e.g. [{optimizer.lr: 0.01, trainer.batch_size: 64}]; once per study
    enqueue_trials: List[Dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False  # print the search space and the first trials' overrides, train nothing
    params: Dict[str, str] = field(default_factory=dict)  # search space, in Hydra's sweep grammar
    # keys sampled only when another key has a value: {optimizer.momentum: {when: {optimizer: sgd}, values: ...}}
    conditional: Dict[str, Any] = field(default_factory=dict)
    # lists sampled length first, then each item: {model.hidden: {count: range(1,4), width: choice(16,32,64)}}
    depth: Dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=TrainctlOptunaSweeperConf,
                             provider="trainctl")


def adopt_sweeper_target(sweeper: DictConfig) -> str | None:
    """Point a config that names hydra-optuna-sweeper's class at this sweeper (its settings are this one's, by
    `override /hydra/sweeper: optuna`); return the notice to show, or None when there was nothing to do."""
    if sweeper is None or sweeper.get("_target_") != HYDRA_OPTUNA_SWEEPER:
        return None
    with read_write(sweeper), open_dict(sweeper):
        sweeper._target_ = TARGET
    return (f"hydra.sweeper._target_={HYDRA_OPTUNA_SWEEPER} is hydra-optuna-sweeper's class: trainctl's optuna "
            "sweeper runs this search (the line can go)")
