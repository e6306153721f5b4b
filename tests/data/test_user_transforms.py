"""`dataset.train_transforms` / `dataset.eval_transforms`: a user's own batched (or per-sample) transforms by
`_target_`, applied after trainctl's, in training, evaluation and predict; refused clearly when they are not
code that takes a batch."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

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

class NotCallable:
    def __init__(self):
        pass
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
    ("[{_target_: os.popen, cmd: ls}]", "dataset.train_transforms.0._target_=os.popen is part of Python's standard "
                                        "library (os), not a transform"),
    ("[{_target_: mytransforms.NotCallable}]", "dataset.train_transforms.0._target_=mytransforms.NotCallable is a class "
                                               "whose instances cannot be called"),
    ("[{_target_: mytransforms.add, amuont: 3}]", "dataset.train_transforms.0: mytransforms.add cannot be called as "
                                                  "add(batch, amuont=...)"),
    ("[{_target_: torchvision.transforms.v2.Compose, transforms: [{_target_: subprocess.Popen, args: ls}]}]",
     "dataset.train_transforms.0.transforms.0._target_=subprocess.Popen is part of Python's standard library"),
    ("[3]", "dataset.train_transforms.0 must be a mapping with a _target_"),
    ("[{_target_: mytransforms.nothing}]", "cannot import _target_ 'mytransforms.nothing'"),
    ("[{_target_: mytransforms.Scale, size: 3}]", "cannot build mytransforms.Scale"),
])
def test_what_is_not_a_transform_is_refused_before_training(fake_fashion, user_module, value, message):
    with pytest.raises(UserError, match=re.escape(message)):
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


def test_nested_targets_are_built_leaves_first(fake_fashion, user_module):
    plain, x = transforms(fake_fashion)
    data, _ = transforms(fake_fashion, "dataset.eval_transforms=[{_target_: torchvision.transforms.v2.Compose, "
                                       "transforms: [{_target_: mytransforms.Scale, factor: 3}, "
                                       "{_target_: mytransforms.add, amount: 1}]}]")
    assert torch.equal(data.eval_transform(x), plain.eval_transform(x) * 3 + 1)


def test_the_readme_example_runs_from_the_working_directory_through_the_console_script(tmp_path, fake_fashion):
    """`trainctl` (the console script, whose sys.path lacks the working directory) finds `mytransforms.py`
    there and calls `add_noise(batch, std=0.2)`."""
    (tmp_path / "mytransforms.py").write_text("import torch\n\ndef add_noise(x, std=0.1):\n"
                                              "    return x + std * torch.randn_like(x)\n")
    script = Path(sys.executable).parent / "trainctl"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([str(script), "train", "model=mlp", "model.hidden=[8]", f"dataset.root={fake_fashion}",
                           NO_SYSTEM_DATA, "trainer.epochs=1", "trainer.max_steps_per_epoch=2", "device=cpu",
                           "dataset.train_transforms=[{_target_: mytransforms.add_noise, std: 0.2}]"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (run_dirs(tmp_path)[0] / "metrics.json").is_file()


@pytest.mark.parametrize("entry", [
    "{_target_: subprocess.Popen, args: 'touch MARKER', shell: true}",
    "{_target_: subprocess.run, args: 'touch MARKER', shell: true}",
    "{_target_: torchvision.transforms.v2.Compose, transforms: [{_target_: subprocess.Popen, args: 'touch MARKER', "
    "shell: true}]}",
])
def test_a_payload_named_as_a_transform_never_runs(tmp_path, fake_fashion, entry):
    """issue 23 class 9: a command-line transform naming a shell command is refused before anything is called."""
    entry = entry.replace("MARKER", str(tmp_path / "marker"))
    proc = run_cli(["train", "model=mlp", "model.hidden=[8]", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA,
                    "trainer.epochs=1", f"dataset.train_transforms=[{entry}]"], tmp_path)
    assert proc.returncode == 2
    assert "is part of Python's standard library (subprocess), not a transform" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "marker").exists() and not run_dirs(tmp_path)


def test_one_hot_labels_reach_the_loss_and_accuracy_still_counts_classes(tmp_path, fake_fashion):
    """`dataset.label_transforms`: the tutorial's one-hot labels; cross-entropy on class probabilities equals
    cross-entropy on class numbers, so the run is the plain run, bit for bit."""
    base = ["model=mlp", "model.hidden=[8]", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, "trainer.epochs=1",
            "trainer.max_steps_per_epoch=3", "tensorboard.images=false", "tensorboard.figures=false"]
    results = []
    for extra in ([], ["dataset.label_transforms=[{_target_: trainctl.data.labels.one_hot, num_classes: 10}]"]):
        cwd = tmp_path / str(len(results))
        cwd.mkdir()
        proc = run_cli(["train", *base, *extra], cwd)
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads((run_dirs(cwd)[0] / "metrics.json").read_text()))
    assert results[1]["test/acc"] == results[0]["test/acc"] and 0 <= results[1]["test/acc"] <= 1
    assert results[1]["test/loss"] == pytest.approx(results[0]["test/loss"], rel=1e-5)


def test_a_label_transform_of_the_wrong_shape_is_named(fake_fashion, user_module):
    from trainctl.data.labels import with_label_transforms

    loss = with_label_transforms(torch.nn.CrossEntropyLoss(), [{"_target_": "mytransforms.shrink"}])
    with pytest.raises(UserError, match=r"dataset.label_transforms.0 raised IndexError"):
        loss(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long))
