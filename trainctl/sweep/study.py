"""Optuna study plumbing: the sweep directory, opening the study under the study lock, stale-trial clean-up."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.trial import TrialState

from trainctl.errors import UserError
from trainctl.sweep.storage import open_storage, setting_text
from trainctl.sweep.storage_lock import LOCK_FILE, StudyLock, make_study_lock


@contextlib.contextmanager
def removed_on_error(paths: list[Path]) -> Iterator[None]:
    """If the block raises, remove what it created of `paths` (files) and the folders above them, so a sweep
    that fails to start leaves nothing behind. Only folders left empty are removed: another sweep starting
    beside this one keeps its files."""
    new_files = [p for p in paths if not p.exists()]
    new_dirs: list[Path] = []
    for path in paths:
        folder = path.parent
        while not folder.exists() and folder not in new_dirs and folder != folder.parent:
            new_dirs.append(folder)
            folder = folder.parent
    try:
        yield
    except BaseException:
        for path in new_files:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in sorted(new_dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def make_sweep_dir(sweep_dir: Path, setting: str | None) -> None:
    """Create the sweep directory and its lock file, or say which setting to change."""
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / LOCK_FILE).touch()
    except OSError as e:
        culprit = f"hydra.sweeper.sweep_dir={setting}" if setting else \
            "the sweep directory (hydra.sweeper.sweep_dir, default runs/optuna/<study_name>)"
        raise UserError(f"{culprit}: cannot create {sweep_dir}/{LOCK_FILE} ({e.strerror or e}): give a "
                        "writable directory") from None


def open_study(name: str, spec: str, setting: str | None, directions: list[str], sweep_dir: Path,
               lock: StudyLock | None = None, heartbeat: dict[str, Any] | None = None) -> optuna.Study:
    """Create or load the study, under the study lock: processes started together would otherwise race to create
    the same database tables (a UNIQUE constraint fails) or the same study. `heartbeat`: see `open_storage`."""
    try:
        # A journal is read (replayed) outside the lock, which other sweeps then wait for only briefly; a
        # database creates its tables when opened, which only one process may do at a time.
        storage = open_storage(spec) if spec.startswith("journal:") else None
        with (lock or make_study_lock(spec, sweep_dir))():
            study = optuna.create_study(study_name=name, directions=directions, load_if_exists=True,
                                        storage=storage if storage is not None else open_storage(spec, heartbeat))
    except Exception as e:  # a path or database that cannot be written or reached
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"hydra.sweeper.storage={setting_text(setting)}: cannot open the study's storage "
                        f"{spec} ({type(e).__name__}: {first}): give a writable path or a reachable database, "
                        "or use storage=memory") from None
    have = [d.name.lower() for d in study.directions]
    if have != directions:
        raise UserError(f"study {name} in {spec} optimises {have}, but this sweep's objective and "
                        f"hydra.sweeper.direction ask for {directions}: give a new hydra.sweeper.study_name, "
                        "or the objective the study was started with")
    return study


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


def name_metrics(study: optuna.Study, names: list[str]) -> None:
    """Name the study's values after the objective (`val/acc`), so Optuna's plots and optuna-dashboard say what
    they show rather than 'Objective Value'."""
    import warnings

    if study.metric_names != names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
