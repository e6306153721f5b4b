"""Every training option on a CUDA GPU, through the real CLI, with the host-sync check armed over the steps.

Collected only with `pytest --device cuda` (marker `cuda`). Each row trains the seed CNN for three epochs on the
toy IDX data with `trainer.sync_debug=error`: a host sync anywhere inside a training step (loop, model, loss,
optimizer, scaler, EMA, data) fails the run.
"""

import json
import math

import pytest
import torch

from conftest import NO_SYSTEM_DATA, READS_BACK_MODEL, run_cli, run_dirs

pytestmark = [pytest.mark.cuda, pytest.mark.slow]

ROWS = {
    "fp32": [],
    "bf16": ["trainer.precision=bf16"],
    "fp16 adam, grad scaler": ["trainer.precision=fp16"],
    "fp16 sgd, grad scaler, clipped": ["trainer.precision=fp16", "optimizer=sgd", "optimizer.lr=0.05",
                                       "optimizer.momentum=0.9", "trainer.gradient_clip_val=1.0"],
    "channels-last bf16": ["trainer.channels_last=true", "trainer.precision=bf16"],
    "ema": ["trainer.ema_decay=0.9"],
    "grad accumulation, cosine": ["trainer.grad_accum_steps=2", "scheduler=cosine"],
    "mid-epoch checkpoints": ["checkpoint.every_n_steps=7"],
}


def train_on_cuda(tmp_path, fake_fashion, *extra):
    proc = run_cli(["train", "model=cnn", "dataset=fashionmnist", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA,
                    "device=cuda", "trainer.epochs=3", "trainer.batch_size=32", "trainer.log_every_n_steps=4",
                    "trainer.progress=false", *extra], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = run_dirs(tmp_path)
    return run, json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("extra", ROWS.values(), ids=ROWS.keys())
def test_each_option_trains_on_cuda_without_a_host_sync_per_step(tmp_path, fake_fashion, extra):
    run, metrics = train_on_cuda(tmp_path, fake_fashion, "trainer.sync_debug=error", *extra)
    assert "device=cuda" in (run / "train.log").read_text()
    assert all(math.isfinite(row["train/loss"]) for row in metrics["history"])
    assert metrics["test/acc"] >= 0.6, metrics  # the toy task is easy; chance is 0.1
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert (last["scaler"] is not None) == ("trainer.precision=fp16" in extra)
    assert next(iter(last["model"].values())).device.type == "cpu"  # checkpoints load anywhere


def test_a_sync_in_the_users_model_is_named(tmp_path, fake_fashion):
    """The check is real: a model that reads a value back every step fails the run, naming the line."""
    source = READS_BACK_MODEL
    (tmp_path / "syncing.py").write_text(source)
    line = source.splitlines().index("        self.last_max = out.max().item()  # the host waits for the GPU here") + 1
    proc = run_cli(["train", "model=mlp", "+model._target_=syncing.ReadsBack", "dataset=fashionmnist",
                    f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, "device=cuda", "trainer.epochs=1",
                    "trainer.progress=false", "trainer.sync_debug=error"], tmp_path, PYTHONPATH=str(tmp_path))
    assert proc.returncode != 0
    assert "trainer.sync_debug=error" in proc.stderr and f"syncing.py:{line}" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_eval_on_cuda_reproduces_the_test_metrics(tmp_path, fake_fashion):
    """Exactly for a deterministic run (eval uses its kernels); otherwise cuDNN's autotuner may choose other
    convolution kernels in another process, whose bf16 sums differ in the last bits."""
    for deterministic in ("true", "false"):
        cwd = tmp_path / deterministic
        cwd.mkdir()
        run, metrics = train_on_cuda(cwd, fake_fashion, "trainer.precision=bf16", "trainer.channels_last=true",
                                     f"trainer.deterministic={deterministic}")
        proc = run_cli(["eval", f"ckpt={run / 'checkpoints' / 'best.pt'}", "device=cuda", f"out={cwd / 'e.json'}"],
                       cwd)
        assert proc.returncode == 0, proc.stderr[-3000:]
        evaluated = json.loads((cwd / "e.json").read_text())
        if deterministic == "true":
            assert (evaluated["test/acc"], evaluated["test/loss"]) == (metrics["test/acc"], metrics["test/loss"])
        else:
            assert evaluated["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-2)
            assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=0.02)


def test_auto_chooses_cuda(tmp_path, fake_fashion):
    run, _ = train_on_cuda(tmp_path, fake_fashion, "device=auto", "trainer.epochs=1")
    assert "device=cuda" in (run / "train.log").read_text()
