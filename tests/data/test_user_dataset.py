"""The dataset group's `_target_`: a user's map-style Dataset (torchvision-style `train=True/False`) from a user
config dir, read once into memory, with trainctl's own keys (validation share, sizes, normalisation) applied."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, run_dirs

DATASETS = '''
import numpy as np
import torch
from torch.utils.data import Dataset

class Bands(Dataset):
    """Class k lights up row band k of a 12x12 grey image (PIL-free: uint8 tensors)."""
    classes = ["a", "b", "c"]
    def __init__(self, train=True, n=90):
        g = torch.Generator().manual_seed(0 if train else 1)
        self.y = torch.arange(n) % 3
        self.x = torch.randint(0, 40, (n, 1, 12, 12), generator=g, dtype=torch.uint8)
        for k in range(3):
            self.x[self.y == k, :, 4 * k:4 * k + 4, :] = 250
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return self.x[i], int(self.y[i])

class Points(Dataset):
    def __init__(self, train=True):
        self.x = np.random.default_rng(0 if train else 1).normal(size=(40, 3)).astype("float32")
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return self.x[i], float(self.x[i].sum())

class NoTrainArgument(Dataset):
    def __init__(self):
        pass

def not_a_dataset() -> int:
    return 3
'''


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "mydata.py").write_text(DATASETS)
    conf = tmp_path / "myconf" / "dataset"
    conf.mkdir(parents=True)
    (conf / "bands.yaml").write_text("_target_: mydata.Bands\nn: 120\nval_fraction: 0.25\nmean: [0.2]\nstd: [0.3]\n")
    (conf / "points.yaml").write_text("_target_: mydata.Points\n")
    (conf / "noarg.yaml").write_text("_target_: mydata.NoTrainArgument\n")
    (conf / "factory.yaml").write_text("_target_: mydata.not_a_dataset\n")
    return tmp_path


def test_a_user_image_dataset_trains_like_a_built_in_one(user_dir):
    proc = run_cli(["train", "--config-dir", "myconf", "dataset=bands", "model=mlp", "model.hidden=[32]",
                    "trainer.batch_size=8", "trainer.epochs=4", "dataset.train_per_class=20"], user_dir)  # no `+`, as on a built-in one
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(user_dir)
    log = (run / "train.log").read_text()
    assert "train 60 / val 30 / test 120" in log  # 120 * 0.25 held out; 20 of each of the 3 classes kept
    assert json.loads((run / "metrics.json").read_text())["test/acc"] > 0.6


def test_a_user_regression_dataset_takes_floats_as_they_are(user_dir):
    proc = run_cli(["train", "--config-dir", "myconf", "dataset=points", "model=mlp", "model.hidden=[8]",
                    "loss=mse", "objective=val/loss", "trainer.epochs=1"], user_dir)
    assert proc.returncode == 0, proc.stderr
    assert "test/loss" in json.loads((run_dirs(user_dir)[0] / "metrics.json").read_text())


@pytest.mark.parametrize(("option", "message"), [
    ("noarg", "takes no `train` argument"),
    ("factory", "does not build a torch.utils.data.Dataset"),
])
def test_what_is_not_a_dataset_class_is_refused_cleanly(user_dir, option, message):
    proc = run_cli(["train", "--config-dir", "myconf", f"dataset={option}", "model=mlp", "trainer.epochs=1"],
                   user_dir)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not run_dirs(user_dir)
