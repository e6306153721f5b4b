"""The job side of a sweep: find this job's Optuna trial (the pruning callback reports to it).

The sweeper passes the study to the job through environment variables that Hydra sets for each job
(`hydra.job.env_set`, given once as hydra overrides the launcher replays for every job without printing them);
the trial is the one whose number is the job's number. With the default launcher the job runs in the
sweeper's process and finds the live trial object; with a process launcher (joblib) it reopens the study from
the persistent storage.
"""

from __future__ import annotations

import os
from typing import Any

ENV_TRIAL_NUMBER = "TRAINCTL_OPTUNA_TRIAL"  # the trial's number in its study: the job's number, hydra.job.num
ENV_STUDY = "TRAINCTL_OPTUNA_STUDY"
ENV_STORAGE = "TRAINCTL_OPTUNA_STORAGE"

_in_process: dict[tuple[str, int], Any] = {}  # (study, trial number) → Trial, for jobs in the sweeper's process


def _key(trial: Any) -> tuple[str, int]:
    return trial.study.study_name, trial.number


def register_in_process(trial: Any) -> None:
    _in_process[_key(trial)] = trial


def forget_in_process(trial: Any) -> None:
    _in_process.pop(_key(trial), None)


def in_sweep() -> bool:
    return ENV_TRIAL_NUMBER in os.environ


def current_trial() -> Any | None:
    if not in_sweep():
        return None
    study_name, number = os.environ[ENV_STUDY], int(os.environ[ENV_TRIAL_NUMBER])
    if (study_name, number) in _in_process:
        return _in_process[study_name, number]
    spec = os.environ.get(ENV_STORAGE, "memory")
    if spec == "memory":
        return None  # an in-memory study lives only in the sweeper's process
    import optuna

    from trainctl.sweep.study import open_storage

    storage = optuna.storages.get_storage(open_storage(spec))  # one storage object for the lookups and the trial
    study = optuna.load_study(study_name=study_name, storage=storage)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)
    return optuna.trial.Trial(study, trial_id)
