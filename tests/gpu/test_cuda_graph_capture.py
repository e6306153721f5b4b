"""Whole-step CUDA graphs on a GPU, through the real CLI (collected only with `pytest --device cuda`): graphs on
and off agree, a step that cannot be captured runs eagerly and says why once, and a run with graphs resumes
bit-identically after SIGKILL. tests/engine/test_cuda_graphs.py drives the same logic on the CPU with a fake
graph."""

import json
import signal

import pytest
import torch

from conftest import NO_SYSTEM_DATA, READS_BACK_MODEL, run_cli, run_dirs

pytestmark = [pytest.mark.cuda, pytest.mark.slow]

CAPTURED = "CUDA graphs: the training step is captured and replayed"
EAGER = "CUDA graphs: the step runs eagerly"
BASE = ["train", "model=cnn", "dataset=fashionmnist", NO_SYSTEM_DATA, "device=cuda", "trainer.epochs=2",
        "trainer.batch_size=32", "trainer.progress=false", "trainer.deterministic=true", "tensorboard.figures=false"]


def train(cwd, fake_fashion, *extra, env=None):
    cwd.mkdir(exist_ok=True)
    proc = run_cli([*BASE, f"dataset.root={fake_fashion}", *extra], cwd, **(env or {}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = run_dirs(cwd)
    log = (run / "train.log").read_text()
    return run, json.loads((run / "metrics.json").read_text()), log


ROWS = {
    "fp32 adam": [],
    "fp16 adam, scaler, clipped": ["trainer.precision=fp16", "trainer.gradient_clip_val=1.0"],
    "bf16, channels-last, ema": ["trainer.precision=bf16", "trainer.channels_last=true", "trainer.ema_decay=0.9"],
    "fused sgd, accumulation, cosine with warm-up": ["optimizer=sgd", "optimizer.lr=0.05", "optimizer.momentum=0.9",
                                                     "trainer.grad_accum_steps=2", "scheduler=cosine",
                                                     "scheduler.warmup_steps=5"],
}


@pytest.mark.parametrize("extra", ROWS.values(), ids=ROWS.keys())
def test_graphs_on_and_off_agree(tmp_path, fake_fashion, extra):
    on_run, on, on_log = train(tmp_path / "on", fake_fashion, "trainer.cuda_graphs=true", *extra)
    off_run, off, off_log = train(tmp_path / "off", fake_fashion, "trainer.cuda_graphs=false", *extra)
    assert on_log.count(CAPTURED) == 1 and "runs eagerly" not in on_log, on_log[-3000:]
    assert CAPTURED not in off_log
    assert on["test/acc"] >= 0.6 and on["test/acc"] == pytest.approx(off["test/acc"], abs=0.03)
    assert on["train/loss"] == pytest.approx(off["train/loss"], rel=0.05)
    if not extra:  # fp32: the weights themselves agree to float rounding
        a, b = (torch.load(r / "checkpoints" / "last.pt", weights_only=True)["model"] for r in (on_run, off_run))
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4)


def test_auto_captures_by_default_on_cuda(tmp_path, fake_fashion):
    _, metrics, log = train(tmp_path, fake_fashion)
    assert log.count(CAPTURED) == 1 and metrics["test/acc"] >= 0.6


def test_an_optimizer_without_a_capturable_step_runs_eagerly_and_says_why_once(tmp_path, fake_fashion):
    _, metrics, log = train(tmp_path, fake_fashion, "optimizer=rmsprop")
    assert log.count(EAGER) == 1 and "optimizer RMSprop has no step that runs inside a CUDA graph" in log
    assert CAPTURED not in log and metrics["test/acc"] >= 0.6


def test_a_host_sync_in_the_users_model_runs_eagerly_and_says_why_once(tmp_path, fake_fashion):
    (tmp_path / "syncing.py").write_text(READS_BACK_MODEL)
    _, metrics, log = train(tmp_path / "run", fake_fashion, "model=mlp", "+model._target_=syncing.ReadsBack",
                            env={"PYTHONPATH": str(tmp_path)})
    assert log.count(EAGER) == 1 and "the step makes the host wait for the GPU" in log, log[-3000:]
    assert CAPTURED not in log and metrics["test/acc"] >= 0.6


def test_a_run_with_graphs_resumes_bit_identically_after_sigkill(tmp_path, fake_fashion):
    args = [*BASE, f"dataset.root={fake_fashion}", "trainer.epochs=3", "trainer.cuda_graphs=true",
            "trainer.precision=bf16", "trainer.channels_last=true", "trainer.ema_decay=0.9", "scheduler=cosine",
            "scheduler.warmup_steps=10", "checkpoint.every_n_steps=5"]
    (tmp_path / "whole").mkdir()
    (tmp_path / "killed").mkdir()
    assert run_cli(args, tmp_path / "whole").returncode == 0
    killed = run_cli(args, tmp_path / "killed", TRAINCTL_FAULTS="kill_at_step=23")  # mid-epoch 2, graphs replaying
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    [run] = run_dirs(tmp_path / "killed")
    resumed = run_cli(["train", f"resume={run}", "device=cuda"], tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run / "train.log").read_text().count(CAPTURED) == 2  # captured again after the restore
    [whole] = run_dirs(tmp_path / "whole")
    a, b = (torch.load(r / "checkpoints" / "last.pt", weights_only=True) for r in (whole, run))
    assert a["step"] == b["step"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    metrics = [json.loads((r / "metrics.json").read_text()) for r in (whole, run)]
    assert metrics[0]["test/acc"] == metrics[1]["test/acc"] and metrics[0]["test/loss"] == metrics[1]["test/loss"]
