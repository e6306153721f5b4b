"""`trainer.val_every_n_steps` (validation inside an epoch, logged by optimizer step) and `train/acc_step` (the
training accuracy of each log interval, read with the loss at log points): both through the real CLI, and the run
they watch trains exactly as it would without them."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli, run_dirs

pytestmark = pytest.mark.slow

# 400 training points (500 less the 20 % validation split) in 10 batches of 40: two log intervals of 200 per epoch
BASE = ["experiment=smoke", "dataset.n_train=500", "trainer.batch_size=40", "trainer.log_every_n_steps=5",
        "trainer.epochs=2", "tensorboard.images=false", "tensorboard.figures=false", "trainer.max_eval_batches=1",
        "trainer.eval_batch_size=64"]


def scalars(path, tag):
    events = EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    return events.Scalars(tag)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same run with validation every 5 steps and without (validation on 1 batch of 64 either way)."""
    found = []
    for extra in (["trainer.val_every_n_steps=5"], []):
        cwd = tmp_path_factory.mktemp("steps")
        proc = run_cli(["train", *BASE, *extra], cwd)
        assert proc.returncode == 0, proc.stderr
        found.append((run_dirs(cwd)[0], proc.stdout + proc.stderr))
    return found


def test_validation_every_n_steps_is_logged_by_step(runs):
    (run, output), (plain, _) = runs
    acc = scalars(run, "val/acc_step")
    assert [e.step for e in acc] == [5, 10, 15, 20]
    assert all(0.0 <= e.value <= 1.0 for e in acc)
    assert [e.step for e in scalars(run, "val/loss_step")] == [5, 10, 15, 20]
    assert "step 15: val/loss" in output and "val/acc" in output
    assert "val/acc_step" not in EventAccumulator(str(plain)).Reload().Tags()["scalars"]


def test_the_watched_run_trains_and_decides_exactly_as_the_plain_one(runs):
    (run, _), (plain, _) = runs
    watched, unwatched = (torch.load(r / "checkpoints" / "last.pt", weights_only=True) for r in (run, plain))
    for key, tensor in unwatched["model"].items():
        assert torch.equal(watched["model"][key], tensor)
    first, second = (json.loads((r / "metrics.json").read_text()) for r in (run, plain))
    assert first["best_epoch"] == second["best_epoch"] and first["val/acc"] == second["val/acc"]
    assert first["val/samples"] == second["val/samples"] == 64


def test_train_acc_is_logged_at_every_log_point_and_adds_up_to_the_epochs(runs):
    (run, _), _ = runs
    acc = scalars(run, "train/acc_step")
    assert [e.step for e in acc] == [5, 10, 15, 20]
    history = json.loads((run / "metrics.json").read_text())["history"]
    for epoch, pair in enumerate((acc[:2], acc[2:])):  # two equal intervals per epoch: their mean is the epoch's
        assert (pair[0].value + pair[1].value) / 2 == pytest.approx(history[epoch]["train/acc"], abs=1e-6)
