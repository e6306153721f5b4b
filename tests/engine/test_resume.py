"""Training that loses nothing, through the real CLI with the test-only fault switch (TRAINCTL_FAULTS).

The run: an MLP with dropout (so the RNG state matters) on 512 training points, batch 32: 16 optimizer steps
per epoch, 3 epochs, 48 steps in all.
"""

import json
import os
import resource
import signal
import subprocess
import sys

import pytest
import torch

from trainctl.engine.checkpoint import load_checkpoint
from trainctl.metrics import WALL_CLOCK

from conftest import run_cli, run_dirs

pytestmark = pytest.mark.slow

RUN = ["model=mlp", "model.hidden=[32]", "model.dropout=0.2", "dataset=blobs", "dataset.n_train=640",
       "dataset.n_test=128", "trainer.epochs=3", "trainer.batch_size=32", "trainer.progress=false",
       "tensorboard.figures=false"]  # matplotlib's figures cost each run a second; tests/callbacks checks them


def comparable(run_dir):
    """metrics.json without the wall-clock figures (they differ between any two runs)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in WALL_CLOCK}


def weights(run_dir, name="last.pt"):
    return load_checkpoint(run_dir / "checkpoints" / name)["model"]


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every resumed one must equal."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = run_cli(["train", *RUN, "checkpoint.every_n_steps=5"], cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(cwd)
    return run


def interrupted_run(tmp_path, faults, *extra, expect):
    proc = run_cli(["train", *RUN, *extra], tmp_path, TRAINCTL_FAULTS=faults)
    assert proc.returncode == expect, proc.stdout[-2000:] + proc.stderr[-2000:]
    [run] = run_dirs(tmp_path)
    return run, proc


def resume(tmp_path, run, *extra, expect=0):
    proc = run_cli(["train", f"resume={run}", *extra], tmp_path)
    assert proc.returncode == expect, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert run_dirs(tmp_path) == [run]  # continued in its own directory, no new one
    return proc


@pytest.mark.parametrize(("faults", "extra"), [
    ("kill_at_step=23", ["checkpoint.every_n_steps=5"]),  # mid-epoch 2, last save at step 20
    ("kill_at_step=17", []),  # first step of epoch 2: back to the end of epoch 1
    ("kill_after_save=2", ["checkpoint.every_n_steps=5"]),  # right after a save
    ("kill_in_save=3", ["checkpoint.every_n_steps=5"]),  # during a save: the previous file must survive
], ids=["mid-epoch", "epoch-boundary", "after-save", "during-save"])
def test_bit_identical_resume_after_sigkill(tmp_path, reference, faults, extra):
    run, _ = interrupted_run(tmp_path, faults, *extra, expect=-signal.SIGKILL)
    state = load_checkpoint(run / "checkpoints" / "last.pt")  # never torn
    assert state["epoch"] < 3
    resume(tmp_path, run)
    assert comparable(run) == comparable(reference)
    assert same_weights(weights(run), weights(reference))
    assert not list((run / "checkpoints").glob(".*tmp*"))  # a save cut short leaves nothing behind


def test_tensorboard_has_one_value_per_epoch_after_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # Killed mid-epoch 3, after 2 epochs and a few log points of the third were logged.
    run, _ = interrupted_run(tmp_path, "kill_at_step=40", "trainer.log_every_n_steps=4", expect=-signal.SIGKILL)
    resume(tmp_path, run)
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    for tag in ("train/loss", "val/acc", "train/lr"):
        assert [e.step for e in events.Scalars(tag)] == [1, 2, 3], tag
    # The per-step curves (the same file, purged at the checkpoint's optimizer step) have one value per log point.
    logged = [e.step for e in events.Scalars("train/loss_step")]
    batches = load_checkpoint(run / "checkpoints" / "last.pt")["step"] // 3  # one optimizer step per batch
    assert logged == [e * batches + b for e in range(3) for b in range(4, batches + 1, 4)]


@pytest.mark.parametrize(("signame", "code"), [("INT", 130), ("TERM", 143)])
def test_signals_save_and_exit_then_resume_exactly(tmp_path, reference, signame, code):
    run, proc = interrupted_run(tmp_path, f"signal_at_step=10:{signame}", "checkpoint.every_n_steps=5",
                                expect=code)
    assert f"stopped by SIG{signame}" in proc.stdout + proc.stderr
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"], state["batches_in_epoch"]) == (0, 10, 10)
    resume(tmp_path, run)
    assert comparable(run) == comparable(reference)
    assert same_weights(weights(run), weights(reference))


def test_second_sigint_exits_at_once(tmp_path):
    code = ("import os, signal, time\n"
            "from trainctl.engine.signals import GracefulStop\n"
            "with GracefulStop() as stop:\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    assert stop.requested\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(5)\n"
            "print('not reached')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 130 and "not reached" not in proc.stdout


def test_nan_stops_the_run_naming_epoch_and_batch(tmp_path):
    run, proc = interrupted_run(tmp_path, "nan_at_batch=20", expect=3)
    message = " ".join(proc.stderr.split())
    assert "the loss is not finite (NaN or inf) at epoch 2, batch 5 of the epoch (optimizer step 21)" in message
    assert "checkpoints/last.pt holds the last good state" in message
    assert "Traceback" not in proc.stderr
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize(("content", "message"), [
    (b"this is not a checkpoint", "is corrupt or not a trainctl checkpoint"),
    (None, "is corrupt or not a trainctl checkpoint"),  # truncated
])
def test_bad_checkpoints_are_named(tmp_path, reference, content, message):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content if content is not None else (reference / "checkpoints" / "last.pt").read_bytes()[:500])
    for args in (["train", *RUN, f"resume={bad}"], ["eval", f"ckpt={bad}"]):
        proc = run_cli(args, tmp_path)
        text = " ".join(proc.stderr.split())
        assert proc.returncode == 2 and str(bad) in text and message in text and "Traceback" not in text


def test_missing_checkpoint(tmp_path):
    proc = run_cli(["train", "resume=runs/nothing-here"], tmp_path)
    assert proc.returncode == 2 and "resume=runs/nothing-here: no checkpoint at" in proc.stderr
    proc = run_cli(["eval", "ckpt=nothing.pt"], tmp_path)
    assert proc.returncode == 2 and "ckpt=nothing.pt: no such file or directory" in proc.stderr


def test_full_disk_is_reported_and_the_previous_checkpoint_survives(tmp_path):
    big = ["model.hidden=[1024,1024]", "trainer.epochs=1"]
    proc = run_cli(["train", *RUN, *big], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)

    def small_files():  # 2 MB per file: logs fit, a 12 MB checkpoint does not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))

    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "trainctl", "train", f"resume={run}", "trainer.epochs=2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, preexec_fn=small_files)
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr
    assert f"could not write {run / 'checkpoints' / 'last.pt'}" in text and "previous file there is intact" in text
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert not list((run / "checkpoints").glob(".*tmp*"))


def test_config_change_on_resume_is_refused_unless_allowed(tmp_path, reference):
    run, _ = interrupted_run(tmp_path, "kill_at_step=20", expect=-signal.SIGKILL)
    proc = resume(tmp_path, run, "model.dropout=0.5", expect=2)
    text = " ".join(proc.stderr.split())
    assert "model.dropout: 0.2 in the checkpoint, 0.5 now" in text and "resume_allow_changes=true" in text
    resume(tmp_path, run, "model.dropout=0.5", "resume_allow_changes=true")
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3


def test_eval_reproduces_the_validation_metrics(tmp_path, reference):
    proc = run_cli(["eval", f"ckpt={reference / 'checkpoints' / 'best.pt'}", "split=val",
                    f"out={tmp_path / 'val.json'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads((tmp_path / "val.json").read_text())
    metrics = json.loads((reference / "metrics.json").read_text())
    assert evaluated["val/acc"] == metrics["val/acc"] and evaluated["val/loss"] == metrics["val/loss"]
    assert evaluated["epoch"] == metrics["best_epoch"] and evaluated["samples"] == 128


def test_determinism_switch_through_the_cli(tmp_path):
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        proc = run_cli(["train", *RUN, "trainer.epochs=1", "trainer.deterministic=true"], tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        runs.append(run_dirs(tmp_path / name)[0])
    assert same_weights(weights(runs[0]), weights(runs[1]))
    assert comparable(runs[0]) == comparable(runs[1])


def test_gradient_accumulation_through_the_cli(tmp_path):
    sgd = ["optimizer=sgd", "optimizer.momentum=0", "model.dropout=0", "trainer.epochs=1"]
    found = {}
    for name, extra in (("big", ["trainer.batch_size=64"]), ("acc", ["trainer.grad_accum_steps=2"])):
        (tmp_path / name).mkdir()
        proc = run_cli(["train", *RUN, *sgd, *extra], tmp_path / name)  # RUN's batch is 32
        assert proc.returncode == 0, proc.stderr
        found[name] = load_checkpoint(run_dirs(tmp_path / name)[0] / "checkpoints" / "last.pt")
    assert found["big"]["step"] == found["acc"]["step"] == 8
    for key, value in found["big"]["model"].items():
        assert torch.allclose(value, found["acc"]["model"][key], atol=1e-6)


def test_a_run_written_by_release_0_1_0_resumes(tmp_path):
    """tests/engine/fixtures/release-0.1.0-run: 1 of 2 epochs trained by trainctl 0.1.0 (the flat layout, before
    the events and callbacks); its checkpoint and overrides must still drive a resume to the end."""
    import shutil
    from pathlib import Path
    from pathlib import Path

    run = tmp_path / "runs" / "old"
    shutil.copytree(Path(__file__).parent / "fixtures" / "release-0.1.0-run", run)
    before = load_checkpoint(run / "checkpoints" / "last.pt")
    assert before["epoch"] == 1
    proc = run_cli(["train", f"resume={run}", "trainer.epochs=2"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["history"][0] == before["history"][0]  # the old epoch is kept as it was
    after = load_checkpoint(run / "checkpoints" / "last.pt")
    assert after["step"] == before["step"] * 2  # one more epoch of the same number of steps
    # its index keys (1.weight: flatten, linear, relu, dropout, linear) read by position, saved with the names
    assert list(before["model"]) == ["1.weight", "1.bias", "4.weight", "4.bias"]
    assert list(after["model"]) == ["fc1.weight", "fc1.bias", "fc.weight", "fc.bias"]
    assert not same_weights(dict(zip(before["model"], after["model"].values())), before["model"])


def test_nan_before_any_checkpoint_says_none_was_saved(tmp_path):
    run, proc = interrupted_run(tmp_path, "nan_at_batch=3", expect=3)
    message = " ".join(proc.stderr.split())
    assert "at epoch 1, batch 4 of the epoch (optimizer step 4)" in message
    assert "no checkpoint had been saved yet" in message and "holds the last good state" not in message
    assert not (run / "checkpoints" / "last.pt").exists()


def snapshot(folder):
    """Every file under `folder` with its bytes and modification time: what "wrote nothing" compares."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_resuming_a_finished_run_says_so_and_writes_nothing(tmp_path):
    one_epoch = [o for o in RUN if not o.startswith("trainer.epochs=")] + ["trainer.epochs=1"]
    assert run_cli(["train", *one_epoch], tmp_path).returncode == 0
    [run] = run_dirs(tmp_path)
    before = snapshot(run)
    proc = resume(tmp_path, run)
    text = " ".join(proc.stdout.split())
    assert f"{run} is already finished: it trained 1 epoch(s) (trainer.epochs=1)" in text
    assert f"its metrics are in {run / 'metrics.json'}" in text and "trainer.epochs=N" in text
    assert "resumed" not in text and "test/acc" not in text  # no second test pass, no summary of one
    assert snapshot(run) == before  # not a byte, not a timestamp, not a new file
    resume(tmp_path, run, "trainer.epochs=2")  # raising the epochs still continues the run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]


def test_a_checkpoint_without_a_training_state_is_refused_by_name(tmp_path):
    plain = tmp_path / "exported" / "model.pt"
    plain.parent.mkdir()
    torch.save({"model": {"weight": torch.zeros(2, 2)}, "format_version": 1}, plain)
    proc = run_cli(["train", *RUN, f"resume={plain}"], tmp_path)
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr
    assert f"checkpoint {plain} cannot be resumed: it has no 'config', 'optimizer', 'scheduler', 'rng' entries" in text
    assert "Traceback" not in text and "KeyError" not in text
    assert [p.name for p in plain.parent.iterdir()] == ["model.pt"]  # no train.log beside it
    assert run_dirs(tmp_path) == []


def test_a_failed_resume_leaves_nothing_behind(tmp_path, reference):
    import shutil
    from pathlib import Path

    corrupt = tmp_path / "elsewhere" / "last.pt"  # a checkpoint outside any run: Hydra logs into its folder
    corrupt.parent.mkdir()
    corrupt.write_bytes((reference / "checkpoints" / "last.pt").read_bytes()[:500])
    proc = run_cli(["train", *RUN, f"resume={corrupt}"], tmp_path)
    assert proc.returncode == 2 and "is corrupt" in proc.stderr
    assert [p.name for p in corrupt.parent.iterdir()] == ["last.pt"]
    run = tmp_path / "runs" / "copy"  # a real run whose last.pt went bad: its files stay as they were
    shutil.copytree(reference, run)
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    before = snapshot(run)
    proc = run_cli(["train", f"resume={run}"], tmp_path)
    assert proc.returncode == 2 and "is corrupt" in proc.stderr
    after = snapshot(run)
    assert set(after) == set(before)
    log = after.pop(Path("train.log"))[0]
    assert log.startswith(before.pop(Path("train.log"))[0])  # at most a line added
    assert after == before


@pytest.mark.parametrize(("extra", "resume_extra"), [
    (["scheduler=cyclic", "scheduler.unit=steps", "scheduler.step_size_up=5", "loss.weight=balanced",
      "loss.reduction=sum"], []),
    (["~scheduler", "+scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau", "+scheduler.interval=epoch",
      "+scheduler.monitor=val/loss", "+scheduler.patience=0", "+scheduler.threshold=0.5"], ["trust_targets=true"]),
], ids=["cyclic-balanced-sum", "target-plateau"])
def test_resume_is_exact_with_per_step_and_monitored_schedules(tmp_path, extra, resume_extra):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir()
    killed.mkdir()
    proc = run_cli(["train", *RUN, *extra], whole)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [reference_run] = run_dirs(whole)
    run, _ = interrupted_run(killed, "kill_at_step=23", *extra, "checkpoint.every_n_steps=5",
                             expect=-signal.SIGKILL)  # mid-epoch 2: the schedule's state comes from step 20
    resume(killed, run, *resume_extra)
    assert comparable(run) == comparable(reference_run)
    assert same_weights(weights(run), weights(reference_run))
