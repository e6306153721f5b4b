"""The study lock: it makes 'count the trials, then ask for one' (and creating the study, and numbering the
sweep processes) one step for every process that shares a study. It lives with the storage, not in a sweep
directory, so sweeps on several machines that share only the storage stop at exactly `n_trials`.

- journal file: a lock file beside the journal (`<journal>.trials.lock`), taken and released the way Optuna's
  own journal lock is (creating it with O_EXCL is atomic on NFSv3 and later); a lock left by a killed sweep is
  broken after Optuna's grace period.
- SQLite: `flock` on a file beside the database; SQLite itself relies on the file system's locks, so this one
  works wherever the database does.
- PostgreSQL, MySQL/MariaDB: the server's advisory lock (`pg_advisory_lock`, `GET_LOCK`), held by a connection
  of its own and released by the server if the process dies.
- memory (one process) and other databases: the sweep directory's lock, so only sweeps that share the sweep
  directory count together.

Unique trial numbers come from Optuna itself (the journal's order, the database's row lock on the study); the
lock adds the count: every trial is created under it, after a count that found room.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from trainctl.errors import UserError
from trainctl.sweep.storage import storage_files

log = logging.getLogger("trainctl.sweep")
StudyLock = Callable[[], ContextManager[None]]
LOCK_FILE = ".study.lock"  # the sweep directory's lock
LOCK_NAME = "trainctl-sweep"  # the database servers' advisory lock
SERVER_DIALECTS = ("postgresql", "mysql", "mariadb")
LOCK_WAIT_S = 600  # MySQL's GET_LOCK needs a time-out; a count and an ask take well under a second


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def study_lock(sweep_dir: Path) -> ContextManager[None]:
    """The sweep directory's lock: for the processes that share the directory."""
    return flocked(sweep_dir / LOCK_FILE)


def lock_path(spec: str) -> Path | None:
    """The lock file beside a journal or SQLite file (None for other storages)."""
    files = storage_files(spec)
    return files[0].with_name(files[0].name + ".trials.lock") if files else None


def _journal_lock(journal: Path) -> StudyLock:
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(str(journal) + ".trials")  # its file: <journal>.trials.lock

    @contextlib.contextmanager
    def held() -> Iterator[None]:
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    return held


def advisory_statements(dialect: str, database: str | None) -> tuple[str, str, dict[str, Any]]:
    """(lock, unlock, parameters): SQL that takes and releases the server's advisory lock for trainctl's sweeps.
    One lock for the whole database: it is held for a count and an ask, and also covers creating Optuna's
    tables in an empty database. PostgreSQL's locks belong to a database, MySQL's to the server (hence the
    database's name in it, cut to MySQL's 64 characters)."""
    if dialect == "postgresql":
        key = int.from_bytes(hashlib.sha1(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
        return "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)", {"key": key}
    name = f"{LOCK_NAME}:{database or ''}"[:64]
    return f"SELECT GET_LOCK(:name, {LOCK_WAIT_S})", "SELECT RELEASE_LOCK(:name)", {"name": name}


def _server_lock(spec: str) -> StudyLock:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(spec, poolclass=NullPool)  # a lock's connection closes with it: nothing left held
    lock, unlock, parameters = advisory_statements(engine.dialect.name, engine.url.database)

    @contextlib.contextmanager
    def held() -> Iterator[None]:
        with engine.connect() as connection:
            if connection.execute(text(lock), parameters).scalar() == 0:  # GET_LOCK's time-out (MySQL)
                raise UserError(f"the sweep lock in {engine.url.render_as_string()} was not released in "
                                f"{LOCK_WAIT_S} s: a sweep holding it may hang; stop it and run this command again")
            try:
                yield
            finally:
                connection.execute(text(unlock), parameters)

    return held


def crosses_machines(spec: str) -> bool:
    """Whether the study lock of `spec` is shared by processes that do not share a sweep directory."""
    return lock_path(spec) is not None or spec.split(":", 1)[0].split("+", 1)[0] in SERVER_DIALECTS


def make_study_lock(spec: str, sweep_dir: Path) -> StudyLock:
    """The lock every process of a study in `spec` takes (see the module's docstring)."""
    path = lock_path(spec)
    if spec.startswith("journal:") and path is not None:
        return _journal_lock(Path(spec.split(":", 1)[1]))
    if path is not None:
        return lambda: flocked(path)
    if crosses_machines(spec):
        return _server_lock(spec)
    if spec != "memory" and not spec.startswith("sqlite"):
        log.warning("trainctl takes the study lock of %s databases in the sweep directory: sweeps that share "
                    "this study stop at exactly n_trials only if they share %s too (PostgreSQL, MySQL and "
                    "journal or SQLite files lock beside the study)", spec.split(":", 1)[0], sweep_dir)
    return lambda: study_lock(sweep_dir)
