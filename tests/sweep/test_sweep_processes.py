"""Sweeps in several processes at once, started as real processes: two with their own sweep directories on one
journal, three identical commands on one SQLite study."""

import os
import subprocess
import sys

import optuna
import pytest

from sweep_runs import BLOBS, FAKES, load_study

pytestmark = pytest.mark.slow


def test_processes_with_their_own_sweep_directories_share_one_journal_study(tmp_path):
    """Two sweeps as on two machines: one journal, a sweep directory each. The last trial's ask waits 3 s after
    the count (longer than a trial), so a sweep that counted without the other's lock would find room too."""
    journal = tmp_path / "shared" / "study.journal"
    journal.parent.mkdir()  # a storage's folder must exist (as a shared mount does): trainctl never makes it
    procs = [subprocess.Popen(
        [sys.executable, "-m", "trainctl", "train", "-m", *BLOBS, "optimizer.lr=tag(log,interval(1e-3,1e-1))",
         "trainer.epochs=1", "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage=journal:{journal}",
         "hydra.sweeper.study_name=shared", f"hydra.sweeper.sweep_dir=machine{i}",
         "+hydra.callbacks.slow._target_=fake_gpus.SlowAskForTheLast"],
        cwd=tmp_path, env={**os.environ, **FAKES}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="shared", storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = study.trials
    assert [t.number for t in trials] == list(range(4))
    assert all(t.state.name == "COMPLETE" for t in trials), [t.state for t in trials]
    ran = [int(p.name) for i in range(2) for p in (tmp_path / f"machine{i}").iterdir() if p.is_dir()]
    assert sorted(ran) == list(range(4))  # each trial's run directory in the sweep directory of the one that ran it
    assert all(ran.count(n) == 1 for n in ran)
    assert study.user_attrs["sweep_processes"] == 2  # numbered 0 and 1: their samplers are seeded apart
    assert len({t.params["optimizer.lr"] for t in trials}) == 4


def test_identical_sweeps_started_together_share_one_study(tmp_path):
    """Three copies of one command on the default SQLite storage: one creates the database and the study, the
    others join it (a race to create the tables used to crash them), and together they stop at n_trials."""
    cmd = [sys.executable, "-m", "trainctl", "train", "-m", "sweep=blobs_mlp", "dataset.n_train=256",
           "trainer.epochs=1", "hydra.sweeper.n_trials=6", "hydra.sweeper.study_name=together"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # three processes on a small machine
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-3000:] for _, err in outputs]
    sweep_dir = tmp_path / "runs" / "optuna" / "together"
    trials = load_study(sweep_dir, "together").trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), [t.state for t in trials]
    assert sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir()) == list(range(6))
