"""`trainctl train -m hydra/sweeper=optuna` end to end on blobs: the results a sweep writes, its space shown by a
dry run, objectives and presets. Pruning, failures, processes, the GPU pool and refusals: test_sweep_*.py."""

import re

import pytest
import yaml

from conftest import hparams_session, run_cli

from sweep_runs import load_study, read_trials, sweep

pytestmark = pytest.mark.slow


def test_random_sweep_writes_consistent_results(tmp_path):
    proc = sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "trainer.batch_size=choice(16,32)",
                 "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler=random", "hydra.sweeper.study_name=s1")
    sweep_dir = tmp_path / "runs" / "optuna" / "s1"
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    for n in range(4):
        assert (sweep_dir / str(n) / "metrics.json").is_file()
        params, status = hparams_session(sweep_dir / str(n))  # each trial is a row of the HParams tab
        assert {"optimizer.lr", "trainer.batch_size", "model", "dataset", "status"} <= params.keys()
        assert status == "STATUS_SUCCESS"
    study = load_study(sweep_dir, "s1")
    rows = read_trials(sweep_dir)
    assert [int(r["number"]) for r in rows] == [t.number for t in study.trials] == [0, 1, 2, 3]
    assert [float(r["val/acc"]) for r in rows] == [t.value for t in study.trials]
    assert [float(r["optimizer.lr"]) for r in rows] == [t.params["optimizer.lr"] for t in study.trials]
    summary = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert summary["best"][0]["number"] == study.best_trial.number
    assert summary["best"][0]["values"] == [study.best_value] and summary["states"] == {"COMPLETE": 4}
    best_config = yaml.safe_load((sweep_dir / "best_config.yaml").read_text())
    assert best_config["optimizer"]["lr"] == study.best_params["optimizer.lr"]
    command = (sweep_dir / "best_command.txt").read_text()
    assert command.startswith("trainctl train ") and "hydra." not in command
    assert "study s1: 4 trials" in proc.stdout  # the table of top trials


def test_dry_run_prints_the_space_and_trains_nothing(tmp_path):
    proc = sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "model.hidden=choice([8],[16])",
                 "hydra.sweeper.dry_run=true", "hydra.sweeper.n_trials=3")
    assert "optimizer.lr: float log [0.001, 0.1]" in proc.stdout
    assert proc.stdout.count("trial ") == 3 and "model.hidden=[" in proc.stdout
    assert not (tmp_path / "runs").exists()
    # The default study name says what is searched: the model, the dataset, the searched keys, a hash.
    assert re.search(r"dry run of study mlp-blobs-lr,hidden-[0-9a-f]{8}:", proc.stdout), proc.stdout
    models = sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "model=choice(mlp,cnn)",
                   "hydra.sweeper.dry_run=true", "hydra.sweeper.n_trials=1")
    assert re.search(r"dry run of study blobs-lr,model-[0-9a-f]{8}:", models.stdout), models.stdout


@pytest.mark.parametrize(("objective", "directions"), [
    ("val/acc", "['maximize']"), ("val/loss", "['minimize']"), ("[val/acc,train/loss]", "['maximize', 'minimize']"),
])
def test_the_direction_follows_the_objective_unless_given(tmp_path, objective, directions):
    proc = sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", f"objective={objective}",
                 "hydra.sweeper.dry_run=true", "hydra.sweeper.n_trials=1")
    assert proc.returncode == 0, proc.stderr
    assert f"directions {directions}" in " ".join(proc.stdout.split())


def test_multi_objective(tmp_path):
    sweep(tmp_path, "optimizer.lr=tag(log,interval(1e-3,1e-1))", "objective=[val/acc,val/loss]",
          "hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.sampler=nsgaii", "hydra.sweeper.n_trials=3",
          "hydra.sweeper.pruner=none", "hydra.sweeper.study_name=m")
    summary = yaml.safe_load((tmp_path / "runs" / "optuna" / "m" / "optimization_results.yaml").read_text())
    assert summary["directions"] == ["maximize", "minimize"] and len(summary["best"][0]["values"]) == 2


def test_sweep_preset(tmp_path):
    proc = run_cli(["train", "-m", "sweep=blobs_mlp", "hydra.sweeper.n_trials=2", "dataset.n_train=256"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [sweep_dir] = (tmp_path / "runs" / "optuna").iterdir()
    assert len(read_trials(sweep_dir)) == 2
