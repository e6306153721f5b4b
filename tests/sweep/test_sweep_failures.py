"""Sweeps that meet failures: a resumed sweep after a kill (stale trials), a trial whose loss is not finite, too many
failed trials, a trial that crashes on its data."""

import os
import subprocess
import sys

import pytest

from sweep_runs import load_study, read_trials, sweep

pytestmark = pytest.mark.slow


def test_resume_continues_to_the_total_and_fails_stale_trials(tmp_path):
    args = ["optimizer.lr=tag(log,interval(1e-3,1e-1))", "hydra.sweeper.sampler=random"]
    sweep(tmp_path, *args, "hydra.sweeper.n_trials=2")
    [sweep_dir] = (tmp_path / "runs" / "optuna").iterdir()  # the default name depends on the command only
    study = load_study(sweep_dir, sweep_dir.name)
    # A trial a killed sweep left RUNNING: its process (a finished one) is gone.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = study.ask()
    stale.set_user_attr("owner", {"host": os.uname().nodename, "pid": int(dead.stdout)})
    sweep(tmp_path, *args, "hydra.sweeper.n_trials=5")
    study = load_study(sweep_dir, sweep_dir.name)
    states = [t.state.name for t in study.trials]
    assert len(states) == 5 and states[2] == "FAIL" and states.count("COMPLETE") == 4
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1", "3", "4"]
    sweep(tmp_path, *args, "hydra.sweeper.n_trials=5")  # already complete: nothing more runs
    assert len(load_study(sweep_dir, sweep_dir.name).trials) == 5


def test_nan_trial_is_recorded_fail_and_the_sweep_completes(tmp_path):
    sweep(tmp_path, "optimizer=sgd", "optimizer.lr=choice(0.01,1e30)", "objective=val/loss",
          "hydra.sweeper.direction=minimize", "hydra.sweeper.sampler=grid", "hydra.sweeper.max_failure_rate=0.5",
          "hydra.sweeper.study_name=n")
    rows = {float(r["optimizer.lr"]): r for r in read_trials(tmp_path / "runs" / "optuna" / "n")}
    assert rows[1e30]["state"] == "FAIL" and "not finite" in rows[1e30]["error"]
    assert rows[0.01]["state"] == "COMPLETE"


def test_too_many_failures_stop_the_sweep_with_a_message(tmp_path):
    proc = sweep(tmp_path, "optimizer=sgd", "optimizer.lr=choice(1e30,1e31)", "objective=val/loss",
                 "hydra.sweeper.direction=minimize", "hydra.sweeper.sampler=grid", "hydra.sweeper.study_name=f",
                 expect=2)
    assert "sweep stopped: 1 of 2 trials failed, more than hydra.sweeper.max_failure_rate=0.25" in proc.stderr
    assert len(read_trials(tmp_path / "runs" / "optuna" / "f")) == 1


def test_a_crashing_trial_logs_its_error_in_its_own_directory(tmp_path):
    # A valid config that fails once its data is read: 205 training samples leave a batch of one for batch norm.
    sweep(tmp_path, "model.batch_norm=true", "trainer.batch_size=choice(32,204)", "hydra.sweeper.sampler=grid",
          "hydra.sweeper.study_name=c", "hydra.sweeper.max_failure_rate=0.5")
    sweep_dir = tmp_path / "runs" / "optuna" / "c"
    rows = {r["trainer.batch_size"]: r for r in read_trials(sweep_dir)}
    assert rows["204"]["state"] == "FAIL" and "batch of one sample" in rows["204"]["error"]
    assert "batch of one sample" in (sweep_dir / rows["204"]["number"] / "train.log").read_text()
