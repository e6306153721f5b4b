"""Heartbeats of database studies, on SQLite (tests/sweep/test_postgres.py does it with processes on PostgreSQL):
a trial that beats stays RUNNING however long it runs; one that stopped beating is marked FAIL after the grace
period, once."""

import logging
import time
import warnings

import optuna
import pytest

from trainctl.sweep.heartbeat import ask, beating, fail_silent_trials, heartbeat_arguments
from trainctl.sweep.space import SearchSpace
from trainctl.sweep.storage import open_storage


def test_a_silent_trial_is_failed_and_a_beating_one_is_not(tmp_path, caplog):
    spec = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="hb", storage=open_storage(spec, heartbeat_arguments(1, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from Optuna about heartbeats outside Study.optimize
        silent, alive = ask(study, SearchSpace()), ask(study, SearchSpace())  # both with a first beat; `silent` "dies" now
    with caplog.at_level(logging.WARNING, logger="trainctl.sweep"), beating(study, alive):
        time.sleep(4.5)  # longer than the grace period; the beating trial beat 4 times
        fail_silent_trials(study)
        fail_silent_trials(study)  # a second look (another process) finds nothing more to do
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {silent.number: "FAIL", alive.number: "RUNNING"}
    assert [r.getMessage() for r in caplog.records if r.name == "trainctl.sweep"] == [
        f"trial {silent.number} marked FAIL: its sweep process stopped sending heartbeats (killed, or its machine "
        "was lost)"]


@pytest.mark.parametrize("spec", ["memory", "journal"])
def test_storages_without_heartbeats_leave_running_trials_alone(tmp_path, spec):
    storage = open_storage(f"journal:{tmp_path / 'j.log'}") if spec == "journal" else None
    study = optuna.create_study(storage=storage)
    trial = ask(study, SearchSpace())
    with beating(study, trial):
        fail_silent_trials(study)
    assert study.get_trials()[0].state.name == "RUNNING"


def test_no_heartbeat_arguments_without_an_interval():
    assert heartbeat_arguments(None, 5) == {}
    assert heartbeat_arguments(60, None)["heartbeat_interval"] == 60
