"""Optuna study plumbing: samplers, pruners, storages, the cross-process lock and stale-trial clean-up."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.trial import TrialState

from trainctl.errors import UserError
from trainctl.registry import did_you_mean
from trainctl.sweep.space import SearchSpace, grid_values

SAMPLERS = ("tpe", "random", "cmaes", "grid", "qmc", "nsgaii")
PRUNERS = ("median", "hyperband", "successive_halving", "none")


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler calls `study.stop()` once the grid is done, which only works inside `study.optimize`; the
    sweep driver asks and tells instead, and stops by capping n_trials at the grid's size."""

    def after_trial(self, study, trial, state, values) -> None:  # type: ignore[no-untyped-def]
        pass


def make_sampler(name: str, seed: int | None, space: SearchSpace) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return AskTellGridSampler(grid_values(space), seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise UserError(f"unknown sampler '{name}'{did_you_mean(name, list(SAMPLERS))} (valid: {', '.join(SAMPLERS)})")


def make_pruner(name: str, startup_trials: int, warmup_epochs: int, max_epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"unknown pruner '{name}'{did_you_mean(name, list(PRUNERS))} (valid: {', '.join(PRUNERS)})")


def storage_spec(storage: str | None, sweep_dir: Path) -> str:
    """The storage as one string a job process can rebuild: 'memory', 'journal:<path>' or a database URL.

    Default: SQLite in the sweep directory, so a sweep can always be resumed. 'journal' is Optuna's append-only
    file, the safe choice for several processes on one machine or a shared file system.
    """
    if storage in (None, "sqlite"):
        return f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"
    if storage == "journal":
        return f"journal:{(sweep_dir / 'optuna.journal').resolve()}"
    if storage.startswith("journal:"):
        return f"journal:{Path(storage.split(':', 1)[1]).expanduser().resolve()}"
    return storage


def open_storage(spec: str) -> Any:
    if spec == "memory":
        return None
    if spec.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(spec.split(":", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if spec.startswith("sqlite:///"):
        Path(spec.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return spec


@contextlib.contextmanager
def study_lock(sweep_dir: Path) -> Iterator[None]:
    """Serialises 'count the trials, then ask for one' across processes sharing the sweep directory, so
    concurrent sweeps stop at exactly n_trials."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / ".study.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose sweep process on this host is gone (killed sweeps leave them)."""
    stale = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = trial.user_attrs.get("owner", {})
        if who.get("host") == socket.gethostname() and not _alive(int(who.get("pid", -1))):
            study.tell(trial.number, state=TrialState.FAIL)
            stale.append(trial.number)
    return stale
