"""The training options: accumulation, clipping, early stopping, precision, EMA, channels-last, anomaly detection,
determinism, k-fold."""

import json

import pytest
import torch

from trainctl.engine.checkpoint import load_checkpoint
from trainctl.api import train
from trainctl.config.compose import compose
from trainctl.data.catalog import build_dataset
from trainctl.engine.events import Callback
from trainctl.engine.step import NonFiniteLoss

from conftest import NO_SYSTEM_DATA, TEST_DEVICE

BLOBS = ["model=mlp", "model.hidden=[16]", "dataset=blobs", "dataset.n_train=640",
         f"device={TEST_DEVICE}", "trainer.progress=false"]


def run(tmp_path, name, *overrides):
    result = train(compose([*BLOBS, *overrides]), run_dir=tmp_path / name)
    return result, load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    sgd = ["optimizer=sgd", "optimizer.momentum=0", "trainer.epochs=1"]
    _, big = run(tmp_path, "big", *sgd, "trainer.batch_size=64")
    _, accumulated = run(tmp_path, "acc", *sgd, "trainer.batch_size=32", "trainer.grad_accum_steps=2")
    _, small = run(tmp_path, "small", *sgd, "trainer.batch_size=32")
    assert big["step"] == accumulated["step"] == 8 and small["step"] == 16
    for key in big["model"]:
        assert torch.allclose(big["model"][key], accumulated["model"][key], atol=1e-6)
    assert not all(torch.allclose(big["model"][k], small["model"][k], atol=1e-6) for k in big["model"])


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping_bounds_the_update(tmp_path, algorithm):
    sgd = ["optimizer=sgd", "optimizer.momentum=0", "optimizer.lr=1.0", "trainer.epochs=1",
           "trainer.max_steps_per_epoch=1", "trainer.batch_size=64"]
    start = compose([*BLOBS, *sgd])
    torch.manual_seed(start.seed)
    from trainctl.components import build_dataset, build_model

    initial = build_model(start.model, build_dataset(start.dataset, start.seed).spec).state_dict()
    _, clipped = run(tmp_path, "c", *sgd, "trainer.gradient_clip_val=0.01",
                     f"trainer.gradient_clip_algorithm={algorithm}")
    change = [clipped["model"][k] - initial[k] for k in initial]
    report = clipped["history"][-1]  # the norm before clipping is what clip_grad_norm_ returned: above the limit
    assert report["train/clip_fraction"] == 1.0 and report["train/grad_norm_before_clip"] > 0.01
    if algorithm == "norm":
        assert torch.sqrt(sum((c ** 2).sum() for c in change)) <= 0.01 + 1e-6
    else:
        assert max(c.abs().max() for c in change) <= 0.01 + 1e-6


def test_early_stopping(tmp_path):
    result, _ = run(tmp_path, "es", "trainer.epochs=20", "early_stopping.patience=2", "early_stopping.min_delta=0.5",
                    "objective=val/loss")
    assert result["status"] == "early_stopped" and result["epochs"] == 3  # no epoch improves by 0.5 after the first
    assert result["history"][-1]["epoch"] == 3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision(tmp_path, precision):
    result, state = run(tmp_path, precision, "trainer.epochs=2", f"trainer.precision={precision}",
                        "optimizer.lr=0.01")
    assert result["test/acc"] > 0.9
    assert (state["scaler"] is not None) == (precision == "fp16")


def test_ema_weights_are_evaluated(tmp_path):
    result, state = run(tmp_path, "ema", "trainer.epochs=2", "trainer.ema_decay=0.9", "optimizer.lr=0.01")
    assert state["ema"] is not None
    assert any(not torch.equal(state["ema"][k], state["model"][k]) for k in state["model"])
    assert result["test/acc"] > 0.9


class InputLayouts(Callback):
    """Records, for every forward call of the model, (training?, was the input batch channels-last?), and whether
    the first conv's weights were."""

    def __init__(self):
        self.seen = []

    def on_fit_start(self, trainer):
        conv = next(m for m in trainer.raw_model.modules() if isinstance(m, torch.nn.Conv2d))
        self.weights_channels_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
        trainer.raw_model.register_forward_pre_hook(
            lambda model, args: self.seen.append(
                (model.training, args[0].is_contiguous(memory_format=torch.channels_last))))


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_reaches_the_model_in_training_and_evaluation(tmp_path, fake_cifar, channels_last):
    # CIFAR, not Fashion-MNIST: with one channel an NCHW batch already counts as channels-last contiguous,
    # so the check could not tell the two layouts apart.
    layouts = InputLayouts()
    cfg = compose(["model=cnn", "dataset=cifar10", f"dataset.root={fake_cifar}", NO_SYSTEM_DATA,
                   f"device={TEST_DEVICE}",
                   "trainer.epochs=1", f"trainer.channels_last={str(channels_last).lower()}",
                   "trainer.progress=false"])
    assert train(cfg, run_dir=tmp_path / "cl", callbacks=[layouts])["epochs"] == 1
    assert {training for training, _ in layouts.seen} == {True, False}  # training batches and evaluation batches
    assert all(is_channels_last == channels_last for _, is_channels_last in layouts.seen), layouts.seen
    assert layouts.weights_channels_last == channels_last


class AnomalyMode(Callback):
    """Records whether autograd anomaly detection is on while epochs train."""

    def __init__(self):
        self.seen = []

    def on_epoch_start(self, trainer, epoch):
        self.seen.append(torch.is_anomaly_enabled())


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled", "ignore:Error detected in")
@pytest.mark.parametrize(
    ("detect", "error", "message"),
    [
        (False, NonFiniteLoss, "the loss is not finite"),  # caught later, by the loss check, naming no operation
        (True, RuntimeError, r"Function '\w+Backward\d*' returned nan values"),  # torch names the backward op
    ],
)
def test_anomaly_detection_names_the_operation_that_made_nan(tmp_path, detect, error, message):
    mode = AnomalyMode()
    cfg = compose([*BLOBS, "trainer.epochs=1", "optimizer=sgd", "optimizer.lr=1e30",  # diverges within an epoch
                   f"trainer.detect_anomaly={str(detect).lower()}"])
    with pytest.raises(error, match=message):
        train(cfg, run_dir=tmp_path / "nan", callbacks=[mode])
    assert mode.seen == [detect]
    assert not torch.is_anomaly_enabled()  # restored after the run


@pytest.mark.slow
def test_torch_compile(tmp_path):
    result, _ = run(tmp_path, "compiled", "trainer.epochs=1", "trainer.compile=true", "optimizer.lr=0.01")
    assert result["test/acc"] > 0.9


def test_deterministic_mode_is_reproducible_and_restored(tmp_path):
    before = torch.are_deterministic_algorithms_enabled()
    _, a = run(tmp_path, "a", "trainer.epochs=1", "trainer.deterministic=true")
    _, b = run(tmp_path, "b", "trainer.epochs=1", "trainer.deterministic=true")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.are_deterministic_algorithms_enabled() == before


class SeenSplits(Callback):
    """Records the train and val inputs of every fit (one per fold)."""

    def __init__(self):
        self.splits = []

    def on_fit_start(self, trainer):
        self.splits.append((rows(trainer.data.train.x), rows(trainer.data.val.x)))


def rows(x):
    return [tuple(r) for r in x.tolist()]


def test_k_fold_cross_validation(tmp_path):
    cfg = compose([*BLOBS, "trainer.epochs=1", "cv.folds=3", "optimizer.lr=0.01"])
    seen = SeenSplits()
    result = train(cfg, run_dir=tmp_path / "cv", callbacks=[seen])
    summary = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert summary == result and summary["folds"] == 3
    folds = [json.loads((tmp_path / "cv" / f"fold_{k}" / "metrics.json").read_text()) for k in range(3)]
    accs = [f["val/acc"] for f in folds]
    assert summary["val/acc"]["mean"] == pytest.approx(sum(accs) / 3)
    assert summary["objective_value"] == summary["val/acc"]["mean"]
    # Each fold validates on a different third of train+val (640 points: 214, 213, 213) and trains on the rest.
    data = build_dataset(cfg.dataset, cfg.seed)
    pool = rows(data.train.x) + rows(data.val.x)
    assert len(pool) == len(set(pool)) == 640  # distinct points, so sets of rows stand for the samples
    assert [len(val) for _, val in seen.splits] == [214, 213, 213]
    for train_rows, val_rows in seen.splits:
        assert len(train_rows) + len(val_rows) == 640
        assert set(train_rows) | set(val_rows) == set(pool) and not set(train_rows) & set(val_rows)
    vals = [set(val) for _, val in seen.splits]
    assert set.union(*vals) == set(pool) and sum(map(len, vals)) == len(pool)  # disjoint parts covering the pool


def test_a_refused_host_sync_names_the_users_line(tmp_path):
    """trainer.sync_debug=error turns torch's refusal into one message pointing at the user's own line (the frames
    inside torch are skipped); the check itself needs CUDA and runs in tests/gpu."""
    from trainctl.engine.host_sync import is_sync_error, sync_error
    user_file = tmp_path / "mymodel.py"
    user_file.write_text("def forward(x):\n    raise RuntimeError('called a synchronizing CUDA operation')\n")
    namespace = {}
    exec(compile(user_file.read_text(), str(user_file), "exec"), namespace)
    with pytest.raises(RuntimeError) as caught:
        namespace["forward"](None)
    assert is_sync_error(caught.value) and not is_sync_error(RuntimeError("shape mismatch"))
    message = str(sync_error(caught.value))
    assert f"{user_file}:2" in message and "trainer.sync_debug=warn" in message


def test_cuda_graphs_warn_off_cuda_and_the_run_trains_either_way(tmp_path, caplog):
    result, state = run(tmp_path, "graphs", "trainer.epochs=2", "trainer.cuda_graphs=true")
    assert state["step"] == 2 * 8 and 0.0 <= result["test/acc"] <= 1.0
    warned = "trainer.cuda_graphs=true, but the step runs eagerly: CUDA graphs need a CUDA device" in caplog.text
    assert warned == (TEST_DEVICE != "cuda")


def test_the_norm_before_clipping_and_how_often_it_fired_reach_metrics_json(tmp_path):
    from conftest import run_cli, run_dirs

    clipped = []
    for limit in ("0.05", "1000"):
        cwd = tmp_path / limit
        cwd.mkdir()
        proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1", f"trainer.gradient_clip_val={limit}",
                        "tensorboard.images=false", "tensorboard.figures=false"], cwd)
        assert proc.returncode == 0, proc.stderr
        clipped.append(json.loads((run_dirs(cwd)[0] / "metrics.json").read_text()))
    assert 0.0 < clipped[0]["train/clip_fraction"] <= 1.0 and clipped[1]["train/clip_fraction"] == 0.0
    assert clipped[1]["train/grad_norm_before_clip"] > 0.0


def test_stop_at_ends_the_run_once_the_monitored_metric_reaches_it(tmp_path):
    """`early_stopping.stop_at`, the tutorial's `if accuracy > 0.98: break`, through the real CLI: the run ends at
    the first epoch whose monitored metric reaches the value (at most it, for a loss), and says so."""
    from conftest import run_cli, run_dirs

    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=30", "objective=val/loss", "optimizer.lr=0.003",
                    "early_stopping.stop_at=0.1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run_dir] = run_dirs(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    losses = [row["val/loss"] for row in metrics["history"]]
    assert metrics["status"] == "early_stopped" and 1 < len(losses) < 30, losses
    assert losses[-1] <= 0.1 < min(losses[:-1]), losses
    assert "early stopping: val/loss reached" in (run_dir / "train.log").read_text()
