"""Where a study lives: the `hydra.sweeper.storage` setting as one string a job process can rebuild, checked
before anything is written, and opened."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import optuna

from trainctl.errors import UserError


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


STORAGE_FORMS = ("null (SQLite in the sweep directory), memory, journal, journal:PATH, or a database URL such as "
                 "sqlite:///PATH or postgresql://USER@HOST/DB")


def setting_text(setting: str | None) -> str:
    return "null" if setting is None else setting


def check_storage(setting: str | None, spec: str) -> None:
    """Refuse, before anything is written, a storage that cannot work: text that is no database URL, a database
    SQLAlchemy has no dialect for, or one whose driver is not installed. Reaching the database is left to
    `open_storage`."""
    if spec == "memory" or spec.startswith("journal:"):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    culprit = f"hydra.sweeper.storage={setting_text(setting)}"
    try:
        url = make_url(spec)
    except ArgumentError:
        raise UserError(f"{culprit} is not a storage: use {STORAGE_FORMS}") from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise UserError(f"{culprit}: no database is called '{url.drivername}': use {STORAGE_FORMS}") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        # the extra brings psycopg, SQLAlchemy's driver for postgresql:// URLs
        extra = " (pip install 'trainctl[postgres]')" if url.drivername in ("postgresql", "postgresql+psycopg") else ""
        raise UserError(f"{culprit}: the driver for {url.get_backend_name()} is not installed ({e}): install it "
                        f"in this environment{extra}, or use another storage") from None


def storage_files(spec: str) -> list[Path]:
    """The local files a storage keeps the study in (none for memory or a database server)."""
    if spec.startswith("journal:"):
        return [Path(spec.split(":", 1)[1])]
    if spec.startswith("sqlite:///") and spec != "sqlite:///:memory:":
        return [Path(spec.removeprefix("sqlite:///"))]
    return []


def open_storage(spec: str, heartbeat: dict[str, Any] | None = None) -> Any:
    """The storage `spec` names, ready for `optuna.create_study`/`load_study` (None: in memory). `heartbeat`:
    a database's heartbeat arguments (`heartbeat.heartbeat_arguments`), for the sweep process that runs trials."""
    if spec == "memory":
        return None
    for path in storage_files(spec):
        path.parent.mkdir(parents=True, exist_ok=True)
    if spec.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(spec.split(":", 1)[1]))
    # SQLite makes a writer wait for the file lock up to `timeout` seconds: processes sharing one study wait
    # their turn rather than fail with 'database is locked'.
    engine_kwargs = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite:") else None
    with warnings.catch_warnings():  # heartbeats are "experimental" arguments of Optuna's since 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(spec, engine_kwargs=engine_kwargs, **(heartbeat or {}))


def check_storage_files(setting: str | None, spec: str) -> None:
    """A storage file the user named lies in a folder that exists (a typo would otherwise start a new study in a
    new folder, apart from the one meant), and an SQLite file that exists is intact."""
    culprit = f"hydra.sweeper.storage={setting_text(setting)}"
    for path in storage_files(spec):
        if setting not in (None, "sqlite", "journal") and not path.parent.is_dir():
            raise UserError(f"{culprit}: the folder {path.parent} does not exist: create it first (mkdir -p "
                            f"{path.parent}) or correct the path; trainctl does not create it, so that a typo "
                            "cannot start a second, separate study")
        if path.exists() and not path.is_file():  # a fifo would block SQLite's open for ever, a folder fail later
            raise UserError(f"{culprit}: {path} is not a regular file (a folder, fifo or device): name a database "
                            "file, or a path where one can be made")
        if spec.startswith("sqlite:"):
            check_intact(path, culprit)


SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_damage(path: Path) -> str | None:
    """What SQLite finds wrong with an existing database file (None: intact, absent, empty or no SQLite file at
    all), read-only: a file cut short by a full disk or an interrupted copy."""
    import sqlite3

    try:
        with path.open("rb") as f:
            if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                return None  # not SQLite: the caller says what it expected
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            found = [row[0] for row in db.execute("PRAGMA quick_check")]
    except OSError:
        return None  # unreadable or absent: opening it says so
    except sqlite3.Error as e:
        return str(e)
    return None if found == ["ok"] else "; ".join(str(f) for f in found[:3])


def check_intact(path: Path, culprit: str) -> None:
    damage = sqlite_damage(path)
    if damage is not None:
        raise UserError(f"{culprit}: the study database {path} is damaged (SQLite: {damage}), as a file cut short by "
                        "a full disk or an interrupted copy is: copy it again from where the sweep ran, or restore "
                        f"a backup (`sqlite3 {path} .recover` may save its trials)")
