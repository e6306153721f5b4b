"""What the end-to-end sweep tests share (test_sweeper.py, test_sweep_*.py): a sweep on blobs through the real
CLI, and its results as the files and the study hold them."""

import csv
import os
from pathlib import Path

import optuna

from conftest import run_cli

# No pruning unless a test asks for it: the median pruner may prune any trial after the fifth.
BLOBS = ["experiment=smoke", "dataset.n_train=256", "dataset.n_test=64", "hydra/sweeper=optuna",
         "hydra.sweeper.pruner=none", "tensorboard.figures=false"]  # figures cost each trial a second


# Hydra callbacks for the tests (fixtures/fake_gpus/fake_gpus.py): GPUs this machine may not have, a slow ask
FAKES = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent / "fixtures" / "fake_gpus"),
                                                      os.environ.get("PYTHONPATH")]))}
TWO_FAKE_GPUS = ["device=auto", "+hydra.callbacks.fake_gpus._target_=fake_gpus.FakeGpus",
                 "+hydra.callbacks.fake_gpus.count=2"]


def sweep(tmp_path, *args, expect=0, **env):
    proc = run_cli(["train", "-m", *BLOBS, *args], tmp_path, **env)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_trials(sweep_dir):
    with open(sweep_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def load_study(sweep_dir, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
