"""Parallel trials with the joblib launcher on a machine with two (simulated) GPUs: a GPU each, and too many
trials at once refused (the pool's rules without processes: test_gpus.py)."""

import pytest
import yaml

from sweep_runs import FAKES, TWO_FAKE_GPUS, load_study, read_trials, sweep

pytestmark = pytest.mark.slow


def test_parallel_trials_with_the_joblib_launcher_get_a_gpu_each(tmp_path):
    """Two joblib workers on a machine with two (simulated) GPUs: trials that run at the same time run on
    different GPUs, lent from a pool as each starts and given back as it ends."""
    sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "trainer.epochs=1", "hydra.sweeper.n_trials=3",
          "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.study_name=j",
          *TWO_FAKE_GPUS, **FAKES)
    sweep_dir = tmp_path / "runs" / "optuna" / "j"
    rows = read_trials(sweep_dir)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3, rows
    trials = load_study(sweep_dir, "j").trials
    devices = {}
    for t in trials:
        config = yaml.safe_load((sweep_dir / str(t.number) / ".hydra" / "config.yaml").read_text())
        asked = (sweep_dir / str(t.number) / "fake_gpu.txt").read_text()  # what the job asked trainctl for
        assert asked == f"cuda:{config['device']['index']}" == t.user_attrs["device"]
        devices[t.number] = asked
    assert set(devices.values()) == {"cuda:0", "cuda:1"}
    together = [(a, b) for a in trials for b in trials if a.number < b.number
                and a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete]
    assert together  # two workers: trials overlapped
    assert all(devices[a.number] != devices[b.number] for a, b in together), (devices, together)
    command = (sweep_dir / "best_command.txt").read_text()
    assert "device=auto" in command and "device." not in command  # the lent GPU is no part of the command


def test_more_trials_at_once_than_gpus_is_refused_before_anything_is_written(tmp_path):
    proc = sweep(tmp_path, "optimizer.lr=0.1,0.2", "hydra.sweeper.n_jobs=3", "hydra/launcher=joblib", *TWO_FAKE_GPUS,
                 expect=2, **FAKES)
    assert ("hydra.sweeper.n_jobs=3 trials at once need more GPUs than this machine has: 2 (cuda:0, cuda:1)"
            in " ".join(proc.stderr.split())), proc.stderr
    assert "hydra.sweeper.gpus_per_trial=0.5" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
