"""The job side of a sweep: find this job's Optuna trial (the pruning callback reports to it).

The sweeper passes the trial to the job through environment variables that Hydra sets for that job alone
(`hydra.job.env_set`): with the default launcher the job runs in the sweeper's process and finds the live trial
object; with a process launcher (joblib) it reopens the study from the persistent storage.
"""

from __future__ import annotations

import os
from typing import Any

ENV_TRIAL_ID = "TRAINCTL_OPTUNA_TRIAL_ID"
ENV_STUDY = "TRAINCTL_OPTUNA_STUDY"
ENV_STORAGE = "TRAINCTL_OPTUNA_STORAGE"

_in_process: dict[int, Any] = {}  # trial id → optuna.trial.Trial, for jobs run in the sweeper's process


def register_in_process(trial: Any) -> None:
    _in_process[trial._trial_id] = trial


def forget_in_process(trial: Any) -> None:
    _in_process.pop(trial._trial_id, None)


def in_sweep() -> bool:
    return ENV_TRIAL_ID in os.environ


def current_trial() -> Any | None:
    if not in_sweep():
        return None
    trial_id = int(os.environ[ENV_TRIAL_ID])
    if trial_id in _in_process:
        return _in_process[trial_id]
    spec = os.environ.get(ENV_STORAGE, "memory")
    if spec == "memory":
        return None  # an in-memory study lives only in the sweeper's process
    import optuna

    from trainctl.sweep.study import open_storage

    study = optuna.load_study(study_name=os.environ[ENV_STUDY], storage=open_storage(spec))
    return optuna.trial.Trial(study, trial_id)
