"""`hydra.sweeper.storage`: what it resolves to, and storages refused before anything is written."""

import importlib.util
from pathlib import Path

import pytest

from trainctl.errors import UserError
from trainctl.sweep.storage import check_storage, storage_files, storage_spec

SWEEP_DIR = Path("/tmp/sweeps/s")


@pytest.mark.parametrize(("setting", "spec"), [
    (None, "sqlite:////tmp/sweeps/s/optuna.db"),
    ("journal", "journal:/tmp/sweeps/s/optuna.journal"),
    ("journal:/data/j.log", "journal:/data/j.log"),
    ("memory", "memory"),
    ("sqlite:////data/o.db", "sqlite:////data/o.db"),
])
def test_storage_spec_and_its_files(setting, spec):
    assert storage_spec(setting, SWEEP_DIR) == spec
    check_storage(setting, spec)  # all usable here
    files = {"sqlite:////tmp/sweeps/s/optuna.db": [Path("/tmp/sweeps/s/optuna.db")],
             "journal:/tmp/sweeps/s/optuna.journal": [Path("/tmp/sweeps/s/optuna.journal")],
             "journal:/data/j.log": [Path("/data/j.log")], "sqlite:////data/o.db": [Path("/data/o.db")]}
    assert storage_files(spec) == files.get(spec, [])


@pytest.mark.parametrize(("setting", "message"), [
    ("foo", r"hydra\.sweeper\.storage=foo is not a storage: use null \(SQLite in the sweep directory\), memory"),
    ("foo://", r"hydra\.sweeper\.storage=foo://: no database is called 'foo': use null"),
    ("sqlite3:///x.db", r"hydra\.sweeper\.storage=sqlite3:///x.db: no database is called 'sqlite3'"),
])
def test_unusable_storages_are_refused(setting, message):
    with pytest.raises(UserError, match=message):
        check_storage(setting, storage_spec(setting, SWEEP_DIR))


def test_a_database_without_its_driver_is_refused():
    # pg8000, a PostgreSQL driver no extra of trainctl's installs (the dev extra brings psycopg)
    assert importlib.util.find_spec("pg8000") is None
    with pytest.raises(UserError, match=r"hydra\.sweeper\.storage=postgresql\+pg8000://nohost/x: the driver for "
                                        r"postgresql is not installed \(No module named 'pg8000'\): install it in "
                                        r"this environment, or use another storage"):
        check_storage("postgresql+pg8000://nohost/x", "postgresql+pg8000://nohost/x")
