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

class Transformed(Dataset):
    """torchvision-style: `transform` on each input, `target_transform` on each label."""
    def __init__(self, train=True, transform=None, target_transform=None):
        self.x = np.random.default_rng(0 if train else 1).normal(size=(40, 3)).astype("float32")
        self.transform, self.target_transform = transform, target_transform
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        x, y = torch.from_numpy(self.x[i]), int(self.x[i].sum() > 0)
        return self.transform(x), self.target_transform(y)

def double(x, factor=2.0):
    return x * factor

class Shift:
    def __init__(self, by=0):
        self.by = by
    def __call__(self, y):
        return y + self.by

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
    (conf / "transformed.yaml").write_text("_target_: mydata.Transformed\ntransform: {_target_: mydata.double, "
                                           "factor: 3}\ntarget_transform: {_target_: mydata.Shift, by: 1}\n")
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


def test_nested_transform_targets_are_built_before_the_dataset(user_dir, monkeypatch):
    """`transform: {_target_: ...}` and `target_transform:` reach the class built (a function bound to its
    settings, a class instantiated), as torchvision's datasets take them."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from trainctl.data.user_dataset import build_user_dataset

    monkeypatch.syspath_prepend(str(user_dir))
    cfg = OmegaConf.load(user_dir / "myconf" / "dataset" / "transformed.yaml")
    data = build_user_dataset(cfg, seed=0)
    raw = torch.from_numpy(np.random.default_rng(1).normal(size=(40, 3)).astype("float32"))
    assert torch.equal(data.test.x, raw * 3)  # the test split keeps its order
    assert torch.equal(data.test.y, (raw.sum(1) > 0).long() + 1)
    assert data.spec.num_classes == 3


def test_a_payload_nested_in_a_dataset_never_runs(user_dir):
    marker = user_dir / "marker"
    (user_dir / "myconf" / "dataset" / "evil.yaml").write_text(
        f"_target_: mydata.Transformed\ntransform: {{_target_: subprocess.Popen, args: 'touch {marker}', shell: true}}\n")
    proc = run_cli(["train", "--config-dir", "myconf", "dataset=evil", "model=mlp", "trainer.epochs=1"], user_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "dataset.transform._target_=subprocess.Popen is part of Python's standard library" in \
        " ".join(proc.stderr.split())
    assert not marker.exists() and not run_dirs(user_dir)
