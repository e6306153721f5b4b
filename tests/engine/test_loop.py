"""`train(cfg) -> dict` without Hydra: accuracy, determinism, outputs and checkpoints."""

import json

import torch

from trainctl.engine.checkpoint import load_checkpoint
from trainctl.api import train
from trainctl.engine.events import Callback, EpochEnd, StopTraining
from trainctl.config.compose import compose

from conftest import NO_SYSTEM_DATA, TEST_DEVICE

BLOBS = ["model=mlp", "dataset=blobs", f"device={TEST_DEVICE}", "trainer.progress=false",
         "optimizer.lr=0.01"]


def test_blobs_reach_high_accuracy(tmp_path):
    result = train(compose([*BLOBS, "trainer.epochs=3"]), run_dir=tmp_path / "run")
    assert result["test/acc"] >= 0.97
    assert result["val/acc"] >= 0.97
    assert result["history"][-1]["train/loss"] < result["history"][0]["train/loss"]


def test_outputs_and_checkpoint_format(tmp_path):
    run = tmp_path / "run"
    result = train(compose([*BLOBS, "trainer.epochs=2"]), run_dir=run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == result  # JSON round-trips floats exactly
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "epochs", "best_epoch",
                "throughput/train_images_per_s"):
        assert key in metrics
    assert metrics["epochs"] == 2 and 1 <= metrics["best_epoch"] <= 2
    assert metrics["throughput/train_images_per_s"] > 0
    assert list(run.glob("events.out.tfevents.*")), "no TensorBoard event file"
    assert (run / "train.log").read_text().count("epoch ") >= 2
    for name in ("last.pt", "best.pt"):
        raw = torch.load(run / "checkpoints" / name, weights_only=True)  # plain containers only
        assert {"model", "optimizer", "scheduler", "epoch", "step", "rng", "config", "format_version"} <= set(raw)
        assert raw["config"]["model"]["name"] == "mlp" and isinstance(raw["config"], dict)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and last["step"] == 2 * 25  # 1600 training points / batch 64 = 25 steps


def test_same_seed_gives_bit_identical_weights(tmp_path, fake_fashion):
    # On a GPU only the deterministic algorithms promise the same bits (cuDNN's autotuner may differ).
    overrides = ["model=cnn", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, f"device={TEST_DEVICE}",
                 "trainer.epochs=2", "trainer.progress=false", "trainer.batch_size=32",
                 f"trainer.deterministic={str(TEST_DEVICE == 'cuda').lower()}"]
    weights = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(compose([*overrides, f"seed={seed}"]), run_dir=tmp_path / name)
        weights.append(load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_callbacks_see_each_epoch_and_can_stop_training(tmp_path):
    seen = []

    class StopAfterTwo(Callback):
        def on_epoch_end(self, trainer, end: EpochEnd) -> None:
            seen.append((end.epoch, end.metrics["val/acc"]))
            if end.epoch == 2:
                raise StopTraining("enough")

    result = train(compose([*BLOBS, "trainer.epochs=5"]), run_dir=tmp_path / "run", callbacks=[StopAfterTwo()])
    assert [e for e, _ in seen] == [1, 2]
    assert result["epochs"] == 2 and "test/acc" in result


def test_best_checkpoint_follows_the_monitored_metric(tmp_path):
    result = train(compose([*BLOBS, "trainer.epochs=3", "objective=val/loss"]), run_dir=tmp_path / "run")
    losses = [h["val/loss"] for h in result["history"]]
    assert result["best_epoch"] == losses.index(min(losses)) + 1
    assert result["objective_value"] == min(losses)
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["epoch"] == result["best_epoch"]


def test_tensorboard_has_per_epoch_scalars_and_the_config(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(compose([*BLOBS, "trainer.epochs=3"]), run_dir=tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "train/lr", "throughput/train_images_per_s"):
        assert tag in scalars, tag
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3]
    assert "test/acc" in scalars
    assert any(t.startswith("config") for t in events.Tags()["tensors"])
