"""The catalog's acceptance runs, end to end through the real CLI on generated data."""

import json

import pytest

from trainctl.api import train
from trainctl.config.compose import compose

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs

pytestmark = pytest.mark.slow
FAST = ["trainer.progress=false", "tensorboard.images=false", "tensorboard.figures=false"]  # pictures: tests/callbacks


def metrics_of(tmp_path):
    [run] = run_dirs(tmp_path)
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("args", [
    ["model=vgg", "dataset=fashionmnist", "trainer.epochs=1", "model.layers=[8,M,16,M]"],
    ["model=cnn", "loss=nll", "optimizer=rmsprop", "scheduler=multistep", "scheduler.milestones=[1]",
     "trainer.epochs=2"],
], ids=["vgg-fashionmnist", "cnn-nll-rmsprop-multistep"])
def test_image_runs(tmp_path, fake_fashion, args):
    proc = run_cli(["train", *args, f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, *FAST], tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = metrics_of(tmp_path)
    assert {"test/acc", "test/top5", "val/top5"} <= set(metrics)
    assert set(metrics["test/acc_per_class"]) == {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                  "Shirt", "Sneaker", "Bag", "Ankle boot"}


def test_resnet_on_cifar10_files(tmp_path, fake_cifar):
    proc = run_cli(["train", "model=resnet", "dataset=cifar10", f"dataset.root={fake_cifar}", "trainer.epochs=1",
                    "trainer.batch_size=32", *FAST], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert metrics_of(tmp_path)["epochs"] == 1


def test_mlp_blobs_focal_nadam_exponential(tmp_path):
    proc = run_cli(["train", "model=mlp", "dataset=blobs", "loss=focal", "optimizer=nadam", "scheduler=exponential",
                    "trainer.epochs=3", *FAST], tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = metrics_of(tmp_path)
    assert metrics["test/acc"] > 0.95
    lrs = [h["lr"] for h in metrics["history"]]
    assert lrs == pytest.approx([2e-3, 2e-3 * 0.9, 2e-3 * 0.81])


def test_lstm_on_sine_through_the_cli(tmp_path):
    proc = run_cli(["train", "model=lstm", "dataset=sine", "trainer.epochs=1", *FAST], tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = metrics_of(tmp_path)
    assert metrics["objective"] == "val/loss" and {"test/mse", "test/mae", "val/mae"} <= set(metrics)
    assert "test/acc" not in metrics


def test_next_value_prediction_through_the_cli(tmp_path):
    """pytorch/examples' time-sequence prediction: an LSTM learns the next value of sine waves
    (`dataset.target=next`); a target the dataset does not make is refused naming its choices."""
    args = ["train", "model=lstm", "dataset=sine", "dataset.target=next", "model.hidden_size=32",
            "optimizer.lr=0.01", "trainer.epochs=3", *FAST]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = metrics_of(tmp_path)
    [run] = run_dirs(tmp_path)
    assert "target: next" in (run / ".hydra" / "config.yaml").read_text()
    losses = [h["train/loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0] / 2 and metrics["test/mse"] < 0.1, (losses, metrics["test/mse"])
    proc = run_cli(["train", "dataset=sine", "dataset.target=sin", *FAST], tmp_path)
    assert proc.returncode == 2 and "dataset.target" in proc.stderr and "next" in proc.stderr
    proc = run_cli(["train", "dataset=sine", "dataset.frequencies=[2,1]", *FAST], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "dataset.frequencies=[2.0, 1.0] is not a range [low, high] with 0 < low <= high" in proc.stderr
    assert len(run_dirs(tmp_path)) == 1


def test_a_batch_larger_than_the_data_trains_on_the_whole_set_each_step(tmp_path):
    """The time-sequence example trains full-batch: a batch size above the training split is one step an epoch."""
    import torch

    proc = run_cli(["train", "model=lstm", "model.hidden_size=8", "dataset=sine", "dataset.n_train=100",
                    "trainer.batch_size=1000", "trainer.epochs=2", *FAST], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2 and metrics_of(tmp_path)["epochs"] == 2


def test_lstm_regressor_cuts_its_loss_tenfold(tmp_path):
    import torch

    from trainctl.components import build_dataset, build_loss, build_model
    from trainctl.engine.step import StepSettings, evaluate

    # Bidirectional: from sin(t) alone the first steps cannot tell a rising sine from a falling one.
    cfg = compose(["model=lstm", "dataset=sine", "model.hidden_size=32", "model.bidirectional=true",
                   "optimizer.lr=0.01", "trainer.epochs=6", *FAST])
    torch.manual_seed(cfg.seed)  # the same initial weights train() starts from
    data = build_dataset(cfg.dataset, cfg.seed)
    untrained = evaluate(build_model(cfg.model, data.spec), data.test, data, build_loss(cfg.loss, data.spec), 512,
                         StepSettings(cfg.trainer, torch.device("cpu")))
    result = train(cfg, run_dir=tmp_path / "run")
    assert result["test/mse"] < untrained["mse"] / 10, (untrained["mse"], result["test/mse"])


def test_objective_must_fit_the_task(tmp_path):
    proc = run_cli(["train", "model=lstm", "dataset=sine", "objective=val/acc", *FAST], tmp_path)
    assert proc.returncode == 2
    assert "objective='val/acc' is not a metric of this regression run" in proc.stderr
    assert not run_dirs(tmp_path)
