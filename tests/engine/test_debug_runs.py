"""Quick tries: `trainer.max_eval_batches`, `trainer.overfit_batches` and the `debug=` presets built on them
(`fast_dev_run`: one batch of each split; `overfit`: the same few batches over and over)."""

import json
from dataclasses import dataclass, field

import pytest
import torch

from trainctl.callbacks import all_callbacks
from trainctl.config.compose import compose
from trainctl.data.catalog import build_dataset
from trainctl.data.splits import DataBundle, Split
from trainctl.engine.checkpoint import load_checkpoint
from trainctl.engine.fit import fit

from conftest import run_cli, run_dirs


@dataclass
class RecordingSplit(Split):
    """A split that keeps every batch it hands out, so a test sees exactly what the loop trained on."""

    drawn: list = field(default_factory=list)

    def to(self, device):
        return self  # stays itself (and on the CPU) when the run moves its data

    def _record(self, batches):
        for x, y in batches:
            self.drawn.append(x.clone())
            yield x, y

    def shuffled(self, *args, **kwargs):
        return self._record(super().shuffled(*args, **kwargs))

    def ordered(self, *args, **kwargs):
        return self._record(super().ordered(*args, **kwargs))


def recorded_fit(tmp_path, overrides):
    # The loop's own draws only: the prediction pictures' extra pass is tested in tests/callbacks/test_pictures.py.
    cfg = compose(["experiment=smoke", "tensorboard.images=false", "tensorboard.figures=false", *overrides])
    data = build_dataset(cfg.dataset, cfg.seed)
    splits = [RecordingSplit(s.x, s.y) for s in (data.train, data.val, data.test)]
    bundle = DataBundle(*splits, data.spec, data.train_transform, data.eval_transform)
    result = fit(cfg, tmp_path / "run", torch.device("cpu"), all_callbacks(cfg), data=bundle)
    return result, *(s.drawn for s in splits)


def test_fast_dev_run_draws_one_batch_of_each_split(tmp_path):
    result, train, val, test = recorded_fit(tmp_path, ["debug=fast_dev_run", "trainer.eval_batch_size=16"])
    assert (len(train), len(val), len(test)) == (1, 1, 1)
    assert result["epochs"] == 1 and (result["val/samples"], result["test/samples"]) == (16, 16)


def test_max_eval_batches_caps_validation_and_test_only(tmp_path):
    result, train, val, test = recorded_fit(tmp_path, ["trainer.epochs=1", "trainer.eval_batch_size=16",
                                                       "trainer.max_eval_batches=2"])
    assert len(train) == 13  # 410 training points at batch 32: training is not capped
    assert (len(val), len(test)) == (2, 2)
    assert (result["val/samples"], result["test/samples"]) == (32, 32)
    full, *_ = recorded_fit(tmp_path / "full", ["trainer.epochs=1", "trainer.eval_batch_size=16"])
    assert (full["val/samples"], full["test/samples"]) == (102, 128)  # the whole splits when not capped


def test_overfit_batches_trains_the_same_batches_every_epoch(tmp_path):
    _, train, _, _ = recorded_fit(tmp_path, ["trainer.epochs=3", "trainer.overfit_batches=2"])
    assert len(train) == 6
    for epoch in (1, 2):
        assert all(torch.equal(a, b) for a, b in zip(train[:2], train[2 * epoch : 2 * epoch + 2]))
    # Without it, the first batches differ between epochs (each epoch has its own shuffle).
    _, shuffled, _, _ = recorded_fit(tmp_path / "shuffled", ["trainer.epochs=2", "trainer.max_steps_per_epoch=2"])
    assert not torch.equal(shuffled[0], shuffled[2])


@pytest.mark.slow
def test_fast_dev_run_through_the_cli(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "debug=fast_dev_run", "trainer.eval_batch_size=16"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and len(metrics["history"]) == 1
    assert (metrics["val/samples"], metrics["test/samples"]) == (16, 16)  # one batch each, of 102 and 128
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (last["epoch"], last["step"]) == (1, 1)  # one optimizer step of one batch
    assert (run / "checkpoints" / "best.pt").is_file()
    assert "on 16 of 128 samples (trainer.max_eval_batches=1)" in " ".join((run / "train.log").read_text().split())


@pytest.mark.slow
def test_overfit_preset_drives_the_training_loss_towards_zero(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "debug=overfit", "trainer.epochs=15"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    losses = [h["train/loss"] for h in json.loads((run / "metrics.json").read_text())["history"]]
    assert len(losses) == 15
    assert losses[-1] < losses[0] / 20 and losses[-1] < 0.05
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 15 * 4  # 4 batches per epoch


def test_a_mistyped_debug_preset_is_an_error_not_a_full_run(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "debug=fast_dev_rn"], tmp_path)
    assert proc.returncode == 2 and "unknown debug 'fast_dev_rn'; did you mean 'fast_dev_run'?" in proc.stderr
    assert run_dirs(tmp_path) == []
