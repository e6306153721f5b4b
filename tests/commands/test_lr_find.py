"""`trainctl lr-find`: on generated data (the sine regression, an MLP, SGD with momentum 0.9) the suggested rate trains
well and a hundred times it blows the run up; what it writes (PNG, CSV, JSON, TensorBoard) and prints; its
options checked before anything is built."""

import csv
import json
import re
import shlex
from concurrent.futures import ThreadPoolExecutor

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli, run_dirs
from trainctl.commands.lr_find import parse
from trainctl.engine.lr_range import RangeOptions, RangeTest, suggest
from trainctl.errors import UserError

TASK = ["dataset=sine", "model=mlp", "model.hidden=[64]", "optimizer=sgd", "optimizer.momentum=0.9"]
STEPS = 100
TRAIN = ["trainer.epochs=3", "trainer.progress=false", "tensorboard.figures=false"]


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("lr_find")
    proc = run_cli(["lr-find", *TASK, f"lr_find.steps={STEPS}"], cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = run_dirs(cwd)
    return cwd, run, proc.stdout, json.loads((run / "lr_find.json").read_text())


def test_it_prints_the_suggestion_and_the_command_that_uses_it(found):
    _, run, out, result = found
    lr = re.search(r"suggested optimizer.lr=(\S+) \(the steepest descent", out)[1]
    assert float(lr) == pytest.approx(result["suggested_lr"], rel=0.05)
    assert "  " + shlex.join(["trainctl", "train", *TASK, f"optimizer.lr={lr}"]) in out.splitlines()
    assert f"plot: {run.relative_to(run.parent.parent) / 'lr_find.png'}" in out
    assert run.name.split("_", 2)[2].startswith("lr-find_mlp-sine_")


def test_the_curve_stops_where_the_loss_diverges_past_the_suggestion(found):
    _, run, _, result = found
    with open(run / "lr_find.csv") as f:
        rows = list(csv.DictReader(f))
    lrs = [float(r["lr"]) for r in rows]
    assert len(rows) == result["steps_run"] < STEPS and "passed 4x its minimum" in result["stopped"]
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-7)
    assert 1e-7 < result["suggested_lr"] < result["minimum_lr"] < lrs[-1]
    smoothed = [float(r["smoothed_loss"]) for r in rows]
    assert min(smoothed) < 0.6 * smoothed[0]  # it found a range where the loss falls
    assert (run / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0}).Reload()
    assert [e.step for e in events.Scalars("lr_find/smoothed_loss")] == list(range(1, len(rows) + 1))
    assert [e.value for e in events.Scalars("lr_find/lr")] == pytest.approx(lrs, rel=1e-5)
    assert "lr_find/plot" in events.Tags()["images"]
    assert not (run / "checkpoints").exists()  # the trained weights are thrown away


def test_the_suggestion_trains_and_a_hundred_times_it_diverges(found):
    cwd, run, _, result = found
    lr = result["suggested_lr"]

    def train(rate: float, name: str):
        (cwd / name).mkdir()
        return run_cli(["train", *TASK, *TRAIN, f"optimizer.lr={rate}"], cwd / name)

    with ThreadPoolExecutor(2) as pool:
        good, bad = pool.map(train, (lr, 100 * lr), ("good", "bad"))
    assert good.returncode == 0, good.stderr[-2000:]
    metrics = json.loads((run_dirs(cwd / "good")[0] / "metrics.json").read_text())
    with open(run / "lr_find.csv") as f:
        untrained = float(next(csv.DictReader(f))["loss"])
    assert metrics["test/loss"] < 0.1 * untrained  # it learns
    assert bad.returncode == 3 and "the loss is not finite" in bad.stderr  # 100x: the run blows up


# ---- the options, before anything is built ---------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["lr_find.start_lr=1", "lr_find.end_lr=0.1"], r"lr_find.start_lr=1 must be below lr_find.end_lr=0.1"),
    (["lr_find.start_lr=0"], r"must both be positive numbers"),
    (["lr_find.steps=5"], r"lr_find.steps=5 is too few to draw a curve: use at least 10"),
    (["lr_find.steps=2.5"], r"lr_find.steps=2.5 is not a whole number"),
    (["lr_find.end=3"], r"unknown lr-find option 'lr_find.end=3': the options are lr_find.start_lr=, "
                        r"lr_find.end_lr=, lr_find.steps=, lr_find.diverge="),
])
def test_bad_options_are_one_clear_error(args, message):
    with pytest.raises(UserError, match=message):
        parse(args)


def test_options_and_overrides_are_told_apart():
    options, overrides = parse(["model=cnn", "lr_find.steps=50", "optimizer.lr=3", "lr_find.end_lr=1"])
    assert options == RangeOptions(steps=50, end_lr=1.0) and overrides == ["model=cnn", "optimizer.lr=3"]


def test_a_loss_that_never_falls_has_no_suggestion():
    test = RangeTest()
    for i in range(30):
        test.record(10.0 ** (i / 10 - 5), 2.0)
    with pytest.raises(UserError, match=r"the loss did not fall between lr 1e-05 and 0.00794"):
        suggest(test)


def test_the_suggestion_is_where_the_loss_falls_fastest():
    """A loss that falls from 2 to 0 around lr 1e-3 (a logistic curve in log(lr)) and explodes after 1e-1."""
    import math

    test = RangeTest()
    rates = RangeOptions(steps=200).rates()
    for lr in rates:
        if not test.record(lr, 2 / (1 + math.exp(4 * (math.log10(lr) + 3))) + (lr > 0.1) * 100):
            break
    suggest(test)
    assert test.suggestion == pytest.approx(1e-3, rel=0.15)
    assert "passed 4x its minimum" in test.stopped and test.lrs[-1] > 0.1
