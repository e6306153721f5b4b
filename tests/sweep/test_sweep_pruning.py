"""Pruning through the real CLI: in the sweep's process, and across the joblib launcher's worker processes,
which reopen the study from its storage."""

import pytest
import yaml

from sweep_runs import read_trials, sweep

pytestmark = pytest.mark.slow


def test_pruning_prunes_bad_trials(tmp_path):
    proc = sweep(tmp_path, "optimizer=sgd", "optimizer.momentum=0", "optimizer.lr=tag(log,interval(1e-6,1))",
          "objective=val/loss", "hydra.sweeper.direction=minimize", "trainer.epochs=4", "hydra.sweeper.n_trials=8",
          "hydra.sweeper.sampler=random", "hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup_trials=1",
          "hydra.sweeper.pruner_warmup_epochs=0", "hydra.sweeper.study_name=p")
    sweep_dir = tmp_path / "runs" / "optuna" / "p"
    rows = read_trials(sweep_dir)
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert pruned, rows
    epochs = [yaml.safe_load((sweep_dir / r["number"] / "metrics.json").read_text())["epochs"] for r in rows]
    assert sum(epochs) < len(rows) * 4
    for r in pruned:
        assert yaml.safe_load((sweep_dir / r["number"] / "metrics.json").read_text())["status"] == "pruned"
    assert "TRAINCTL_OPTUNA" not in proc.stdout + proc.stderr  # how a job finds its trial is not shown


def test_pruning_across_processes_with_a_persistent_storage(tmp_path):
    """With the joblib launcher each trial runs in a worker process, which reopens the study from SQLite."""
    proc = sweep(tmp_path, "optimizer=sgd", "optimizer.momentum=0", "optimizer.lr=tag(log,interval(1e-6,1))",
          "objective=val/loss", "hydra.sweeper.direction=minimize", "trainer.epochs=4", "hydra.sweeper.n_trials=8",
          "hydra.sweeper.sampler=random", "hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup_trials=1",
          "hydra.sweeper.pruner_warmup_epochs=0", "hydra/launcher=joblib", "hydra.launcher.n_jobs=1",
          "hydra.sweeper.study_name=pj")
    rows = read_trials(tmp_path / "runs" / "optuna" / "pj")
    assert any(r["state"] == "PRUNED" for r in rows), rows
    assert len(rows) == 8
    assert "#0 : experiment=smoke" in proc.stdout  # the launch lines are there, without the trial's plumbing
    assert "TRAINCTL_OPTUNA" not in proc.stdout + proc.stderr
