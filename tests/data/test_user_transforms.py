"""`dataset.train_transforms` / `dataset.eval_transforms`: a user's own batched (or per-sample) transforms by
`_target_`, applied after trainctl's, in training, evaluation and predict; refused clearly when they are not
code that takes a batch."""

from __future__ import annotations

import sys

import pytest
import torch

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs
from trainctl.config.compose import compose
from trainctl.data.catalog import build_dataset
from trainctl.errors import UserError

TRANSFORMS = '''
import torch

def add(x, amount=1.0):
    return x + amount

class Scale:
    def __init__(self, factor=2.0):
        self.factor = factor
    def __call__(self, x):
        return x * self.factor

def shrink(x):
    return x[:, :, :4, :4]
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "mytransforms.py").write_text(TRANSFORMS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("mytransforms", None)


def transforms(fake_fashion, *overrides):
    data = build_dataset(compose([f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, *overrides]).dataset, 0)
    x = data.test.x[:8]
    return data, x


def test_user_transforms_run_after_normalisation_in_order(fake_fashion, user_module):
    plain, x = transforms(fake_fashion)
    data, _ = transforms(fake_fashion, "dataset.train_transforms=[{_target_: mytransforms.add, amount: 3}]",
                         "dataset.eval_transforms=[{_target_: mytransforms.Scale, factor: 2},"
                         "{_target_: mytransforms.add, per_sample: true}]")
    expected_train = plain.train_transform(x, torch.Generator().manual_seed(0)) + 3
    assert torch.equal(data.train_transform(x, torch.Generator().manual_seed(0)), expected_train)
    assert torch.equal(data.eval_transform(x), plain.eval_transform(x) * 2 + 1)  # scale first, then add


@pytest.mark.parametrize(("value", "message"), [
    ("[{_target_: os.system}]", "dataset.train_transforms.0._target_=os.system is neither a class nor a Python "
                                "function"),
    ("[3]", "dataset.train_transforms.0 must be a mapping with a _target_"),
    ("[{_target_: mytransforms.nothing}]", "cannot import _target_ 'mytransforms.nothing'"),
    ("[{_target_: mytransforms.Scale, size: 3}]", "cannot build mytransforms.Scale"),
])
def test_what_is_not_a_transform_is_refused_before_training(fake_fashion, user_module, value, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("(", r"\(")):
        transforms(fake_fashion, f"dataset.train_transforms={value}")


def test_a_transform_that_changes_the_shape_is_named(fake_fashion, user_module):
    data, x = transforms(fake_fashion, "dataset.eval_transforms=[{_target_: mytransforms.shrink}]")
    with pytest.raises(UserError, match=r"dataset.eval_transforms.0 must return a tensor of the batch's shape"):
        data.eval_transform(x)


def test_through_the_cli_training_eval_and_predict_use_them(tmp_path, fake_fashion):
    # Processes: in-process, mytransforms.add was taken for a factory (cause not yet found; see the suite notes).
    (tmp_path / "mytransforms.py").write_text(TRANSFORMS)
    base = ["model=mlp", "model.hidden=[16]", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, "trainer.epochs=1"]
    proc = run_cli(["train", *base, "dataset.train_transforms=[{_target_: mytransforms.add, amount: 0.5}]",
                    "dataset.eval_transforms=[{_target_: mytransforms.Scale, factor: -1}]"], tmp_path, subprocess=True)
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(tmp_path)
    refused = run_cli(["eval", f"ckpt={run}"], tmp_path, subprocess=True)
    assert refused.returncode == 2 and "dataset.eval_transforms.0._target_=mytransforms.Scale" in refused.stderr
    trusted = run_cli(["eval", f"ckpt={run}", "trust_targets=true", f"out={tmp_path / 'eval.json'}"], tmp_path,
                      subprocess=True)
    assert trusted.returncode == 0, trusted.stderr
    import json

    tested = json.loads((run / "metrics.json").read_text())["test/acc"]
    assert json.loads((tmp_path / "eval.json").read_text())["test/acc"] == pytest.approx(tested)
