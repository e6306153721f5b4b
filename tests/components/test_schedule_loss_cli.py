"""scheduler=cyclic, loss.weight=balanced and their bad values through the real CLI."""

import json

import pytest
import torch

from conftest import run_cli, run_dirs

pytestmark = pytest.mark.slow


def trained(tmp_path, *overrides):
    proc = run_cli(["train", "experiment=smoke", *overrides], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [run] = run_dirs(tmp_path)
    return run


def test_cyclic_trains_and_steps_once_per_optimizer_step(tmp_path):
    run = trained(tmp_path, "scheduler=cyclic", "scheduler.unit=steps", "scheduler.step_size_up=3")
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["scheduler"]["scheduler"]["last_epoch"] == state["step"] > 2  # the scheduler saw every step
    history = json.loads((run / "metrics.json").read_text())["history"]
    # 0.01 (smoke's lr) up to 0.04 over 3 steps and down again: an epoch's last lr lies on that triangle
    assert all(0.01 <= h["lr"] <= 0.04 for h in history) and history[0]["lr"] != history[1]["lr"]


def test_balanced_class_weights_train_and_are_logged(tmp_path):
    run = trained(tmp_path, "loss.weight=balanced", "loss.reduction=sum")
    log = (run / "train.log").read_text()
    assert "loss.weight=balanced: class weights [" in log and "from training counts [" in log
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val/loss"] < 1.0  # a per-sample figure, not a sum over a batch of 32


@pytest.mark.parametrize(("overrides", "message"), [
    (["scheduler=cyclic", "scheduler.mode=foo"],
     "scheduler.mode='foo' is not allowed: choose one of triangular, triangular2, exp_range"),
    (["loss=focal", "loss.alpha=[0.5,0.25,0.25]"],
     "error: loss.alpha has 3 values but the dataset has 2 classes: give one weight per class"),
])
def test_a_bad_value_exits_2_with_one_message_naming_the_key(tmp_path, overrides, message):
    proc = run_cli(["train", "experiment=smoke", *overrides], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.count("error:") == 1
    assert run_dirs(tmp_path) == []
