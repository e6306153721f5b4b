"""What the TensorBoard callback writes, read back with TensorBoard's own event reader: per-step curves, the
train-vs-val custom-scalars layout, an HParams session for a single run and for each job of a grid multirun; and
progress as log lines when stdout is not a terminal."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from conftest import hparams_session, hparams_tab, run_cli, run_dirs

pytestmark = pytest.mark.slow

SMOKE = ["experiment=smoke", "dataset.n_train=256", "dataset.n_test=64", "trainer.batch_size=16"]


def scalars(path, tag):
    events = EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    return events.Scalars(tag)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """Two epochs, a log point every 3 batches, progress on (stdout is a pipe here, as in CI)."""
    cwd = tmp_path_factory.mktemp("single")
    proc = run_cli(["train", *SMOKE, "trainer.epochs=2", "trainer.log_every_n_steps=3", "trainer.progress=true",
                    "optimizer.lr=0.02"], cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [run] = run_dirs(cwd)
    return run, proc


def test_loss_and_learning_rate_are_logged_at_every_log_point(single_run):
    run, _ = single_run
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    n_train = int((run / "train.log").read_text().split("(train ")[1].split(" ")[0])
    per_epoch = -(-n_train // 16)
    expected = [e * per_epoch + b for e in range(epochs) for b in range(3, per_epoch + 1, 3)]
    loss = scalars(run, "train/loss_step")
    assert [e.step for e in loss] == expected
    assert all(0 < e.value < 10 for e in loss)
    lr = scalars(run, "train/lr_step")
    assert len(lr) == len(loss) and all(e.value == pytest.approx(0.02) for e in lr)


def test_train_and_validation_share_a_chart(single_run):
    run, _ = single_run
    events = EventAccumulator(str(run), size_guidance={"tensors": 0})
    events.Reload()
    [written] = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(written.tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts["loss"] == ["^train/loss$", "^val/loss$"]
    assert charts["acc"] == ["^train/acc$", "^val/acc$"]
    assert charts["training loss"] == ["^train/loss_step$"]
    assert charts["learning rate"] == ["^train/lr_step$"]


def test_a_single_run_is_a_row_of_the_hparams_tab_with_its_real_metrics(single_run):
    run, _ = single_run
    params, status = hparams_session(run)
    assert params["optimizer.lr"] == pytest.approx(0.02) and params["trainer.progress"] is True
    assert params["trainer.epochs"] == "2" and params["seed"] == "0"  # integers as written, not 2.000
    assert params["model"] == "mlp" and params["dataset"] == "blobs" and params["experiment"] == "smoke"
    assert params["status"] == "completed" and status == "STATUS_SUCCESS"
    metrics = json.loads((run / "metrics.json").read_text())
    experiment, groups = hparams_tab(run.parent, ("val/acc", "test/acc"))
    tags = {m.name.tag for m in experiment.metric_infos}
    assert {"val/loss", "val/acc", "test/loss", "test/acc"} <= tags  # the curves' own tags: "show metrics" draws them
    assert not any(t.startswith("hparams/") for t in tags)
    assert not any(t.startswith("step/") for t in tags) and "lr" not in tags  # no empty columns, no bare lr
    [group] = groups.values()
    # The HParams tab reads the test metrics (one point each) and the last validation point of the curves.
    values = {m.name.tag: m.value for m in group.metric_values}
    assert values["val/acc"] == pytest.approx(metrics["history"][-1]["val/acc"], rel=1e-6)
    assert values["test/acc"] == pytest.approx(metrics["test/acc"], rel=1e-6)


def test_without_a_terminal_progress_is_a_log_line_per_log_interval(single_run):
    run, proc = single_run
    lines = [line for line in (run / "train.log").read_text().splitlines() if "  batch " in line]
    assert len(lines) == len(scalars(run, "train/loss_step"))
    assert "epoch 1/2  batch 3/" in lines[0] and "loss " in lines[0] and "samples/s" in lines[0]
    assert sum("  batch " in line for line in proc.stdout.splitlines()) == len(lines)  # the console too


def test_each_job_of_a_grid_multirun_is_a_row_of_the_hparams_tab(tmp_path):
    proc = run_cli(["train", "-m", *SMOKE, "trainer.epochs=1", "optimizer.lr=1e-3,1e-2"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [sweep] = run_dirs(tmp_path)
    rows = {job.name: hparams_session(job)[0] for job in sorted(sweep.iterdir()) if job.is_dir()}
    assert {name: p["optimizer.lr"] for name, p in rows.items()} == {"0_optimizer.lr=0.001": pytest.approx(1e-3),
                                                                     "1_optimizer.lr=0.01": pytest.approx(1e-2)}


def test_a_log_directory_mixing_a_run_and_a_grid_shows_the_headline_results_first(tmp_path):
    """TensorBoard shows the first five metric columns: the objective, val/loss and the test metrics, with values
    in every row (so parallel coordinates draw lines), and each row has the main hyperparameters' real values."""
    assert run_cli(["train", *SMOKE, "trainer.epochs=1"], tmp_path).returncode == 0
    proc = run_cli(["train", "-m", *SMOKE, "trainer.epochs=1", "model=mlp", "optimizer.lr=1e-3,1e-2"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    shown = ("best/test/acc", "best/test/loss", "best/val/acc", "best/val/loss")
    experiment, groups = hparams_tab(tmp_path / "runs", shown)
    assert [m.name.tag for m in experiment.metric_infos][:4] == list(shown)
    assert len(groups) == 3
    for group in groups.values():
        assert set(shown) <= {m.name.tag for m in group.metric_values}
    columns = {h.name for h in experiment.hparam_infos}
    assert {"model", "optimizer", "optimizer.lr", "trainer.batch_size", "trainer.epochs", "scheduler", "loss",
            "seed"} <= columns
    [single] = [p for p in run_dirs(tmp_path) if not p.name.startswith("sweep_")]
    params, _ = hparams_session(single)
    assert params["optimizer.lr"] == pytest.approx(0.01)  # not overridden: the value used, from the config
