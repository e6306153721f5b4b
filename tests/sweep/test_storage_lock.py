"""The study lock lives with the storage: sweeps with sweep directories of their own (other machines) that share
a journal or database share it, so their count-then-ask steps never interleave."""

import threading
from pathlib import Path

import pytest

from trainctl.sweep.storage import storage_spec
from trainctl.sweep.storage_lock import advisory_statements, crosses_machines, lock_path, make_study_lock


@pytest.mark.parametrize("storage", ["journal:{shared}/study.journal", "sqlite:///{shared}/study.db"])
def test_sweeps_in_different_directories_wait_for_each_other(tmp_path, storage):
    spec = storage_spec(storage.format(shared=tmp_path / "shared"), tmp_path / "a")
    (tmp_path / "shared").mkdir()
    first, second = make_study_lock(spec, tmp_path / "a"), make_study_lock(spec, tmp_path / "b")
    taken = threading.Event()

    def take_second():
        with second():
            taken.set()

    with first():
        thread = threading.Thread(target=take_second)
        thread.start()
        # Cannot pass while the first holds the lock, however long the wait; a lock of each sweep directory would
        # have let it through at once.
        assert not taken.wait(0.5)
    thread.join(30)
    assert taken.is_set()  # and it does once the first is released
    assert lock_path(spec).parent == tmp_path / "shared"


@pytest.mark.parametrize(("spec", "across"), [
    ("journal:/shared/j.journal", True), ("sqlite:////shared/o.db", True),
    ("postgresql://u@h/db", True), ("postgresql+psycopg2://u@h/db", True), ("mysql+pymysql://u@h/db", True),
    ("memory", False), ("sqlite:///:memory:", False), ("oracle+oracledb://u@h/db", False),
])
def test_which_storages_lock_across_machines(spec, across):
    assert crosses_machines(spec) is across
    expected = {"journal:/shared/j.journal": Path("/shared/j.journal.trials.lock"),
                "sqlite:////shared/o.db": Path("/shared/o.db.trials.lock")}
    assert lock_path(spec) == expected.get(spec)


def test_database_servers_use_their_advisory_locks():
    lock, unlock, parameters = advisory_statements("postgresql", "optuna")
    assert (lock, unlock) == ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)")
    assert -2**63 <= parameters["key"] < 2**63  # PostgreSQL's bigint key
    lock, unlock, parameters = advisory_statements("mysql", "optuna")
    assert lock.startswith("SELECT GET_LOCK(:name, ") and unlock == "SELECT RELEASE_LOCK(:name)"
    assert parameters == {"name": "trainctl-sweep:optuna"}  # MySQL's locks are the server's: named per database
    assert len(advisory_statements("mysql", "x" * 100)[2]["name"]) == 64
