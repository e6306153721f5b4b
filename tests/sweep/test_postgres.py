"""Sweeps across machines on a real PostgreSQL server: three `trainctl train -m` processes, each with a sweep
directory of its own (as on three machines), share one `postgresql://` study.

The server: $TRAINCTL_TEST_POSTGRES (a database URL; `.ci/run` starts one), else one this fixture starts with
the same steps (tests/postgres_server.py). Skipped only where no PostgreSQL can be started, never in CI.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import optuna
import pytest

import postgres_server

pytestmark = pytest.mark.slow

ENV_URL = "TRAINCTL_TEST_POSTGRES"
# seconds-long trials on generated data, no pruning: every trial that is not killed completes
TRIAL = ["experiment=smoke", "dataset.n_train=256", "dataset.n_test=64", "hydra/sweeper=optuna",
         "hydra.sweeper.pruner=none", "tensorboard.figures=false", "optimizer.lr=tag(log,interval(1e-3,1e-1))"]


@pytest.fixture(scope="module")
def postgres_url():
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    try:
        url, root = postgres_server.start()
    except postgres_server.NoServer as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI tests sweeps on PostgreSQL, and none could be started: {e}")
        pytest.skip(f"no PostgreSQL server can be started here ({e}); set ${ENV_URL} to a database URL to test one")
    yield url
    postgres_server.stop(root)


def unique(name):
    """A study name no earlier run of the tests used: a server given by $TRAINCTL_TEST_POSTGRES may keep them."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def start_sweeps(tmp_path, url, study, n_trials, *extra, processes=3):
    """`processes` sweeps on one study, each writing its output to machineN.log (a pipe nobody reads would fill)."""
    procs = []
    for i in range(processes):
        with open(tmp_path / f"machine{i}.log", "w") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "trainctl", "train", "-m", *TRIAL, f"hydra.sweeper.n_trials={n_trials}",
                 f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={study}",
                 f"hydra.sweeper.sweep_dir=machine{i}", *extra],
                cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=out, stderr=subprocess.STDOUT))
    return procs


def finish(procs, tmp_path, timeout=600):
    for p in procs:
        p.wait(timeout=timeout)
    return [(tmp_path / f"machine{i}.log").read_text() for i in range(len(procs))]


def ran_by_each(tmp_path, processes=3):
    """Each machine's trial numbers: the run directories in its sweep directory."""
    return [sorted(int(p.name) for p in (tmp_path / f"machine{i}").iterdir() if p.is_dir())
            for i in range(processes)]


def test_the_study_lock_waits_on_the_server_and_dies_with_its_process(postgres_url, tmp_path):
    from trainctl.sweep.storage_lock import make_study_lock

    first, second = make_study_lock(postgres_url, tmp_path / "a"), make_study_lock(postgres_url, tmp_path / "b")
    taken = threading.Event()

    def take_second():
        with second():
            taken.set()

    with first():
        thread = threading.Thread(target=take_second)
        thread.start()
        assert not taken.wait(1.0)  # other sweep directories, one server: the second waits
    thread.join(30)
    assert taken.is_set()
    # A process killed while it holds the lock: the server releases it with the connection.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from trainctl.sweep.storage_lock import make_study_lock; "
         "held = make_study_lock(sys.argv[1], Path('.'))(); held.__enter__(); print('held', flush=True); "
         "time.sleep(600)", postgres_url], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    taken.clear()
    thread = threading.Thread(target=take_second)
    thread.start()
    assert not taken.wait(1.0)
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    thread.join(30)
    assert taken.is_set()


def test_three_processes_end_at_exactly_n_trials(postgres_url, tmp_path):
    name = unique("three")
    procs = start_sweeps(tmp_path, postgres_url, name, 6)
    outputs = finish(procs, tmp_path)
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    study = optuna.load_study(study_name=name, storage=postgres_url)
    assert [t.number for t in study.trials] == list(range(6))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    assert study.user_attrs["sweep_processes"] == 3  # each seeded its sampler apart
    ran = ran_by_each(tmp_path)
    assert sorted(sum(ran, [])) == list(range(6)), ran  # each trial ran once, by one machine
    assert all(ran), ran  # and every machine took part


def test_a_process_killed_mid_trial_leaves_a_failed_trial_and_the_others_finish(postgres_url, tmp_path):
    """Machine 0 is killed (SIGKILL) once its first trial has started: its trial stops beating, machines 1 and 2
    mark it FAIL after the grace period and run the rest of the study, which ends at exactly n_trials."""
    name = unique("killed")
    procs = start_sweeps(tmp_path, postgres_url, name, 6, "trainer.epochs=3", "hydra.sweeper.heartbeat_interval=1",
                         "hydra.sweeper.grace_period=2")
    deadline = time.monotonic() + 300
    while not list((tmp_path / "machine0").glob("*/train.log")):  # its trial's job has started
        assert time.monotonic() < deadline and procs[0].poll() is None, (tmp_path / "machine0.log").read_text()
        time.sleep(0.1)
    procs[0].send_signal(signal.SIGKILL)
    [killed] = [int(p.parent.name) for p in (tmp_path / "machine0").glob("*/train.log")]
    outputs = finish(procs, tmp_path)
    assert procs[0].returncode == -signal.SIGKILL
    assert [p.returncode for p in procs[1:]] == [0, 0], outputs[1:]
    study = optuna.load_study(study_name=name, storage=postgres_url)
    assert [t.number for t in study.trials] == list(range(6))
    states = {t.number: t.state.name for t in study.trials}
    assert states == {n: "FAIL" if n == killed else "COMPLETE" for n in range(6)}, states
    assert study.trials[killed].user_attrs["owner"]["pid"] == procs[0].pid
    assert any(f"trial {killed} marked FAIL: its sweep process stopped sending heartbeats" in out
               for out in outputs[1:]), outputs[1:]
    ran = ran_by_each(tmp_path)
    assert ran[0] == [killed] and sorted(ran[1] + ran[2]) == sorted(set(range(6)) - {killed}), ran
