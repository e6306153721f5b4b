"""Data-parallel training (`trainer.devices=N`, torchrun) on the CPU: gloo, 2 processes, small generated data.

Each launch checks several things, since a 2-process run costs CI two interpreters and a rendezvous:
- torchrun's own launch ends with the validation metrics of one process training the same global batch
  (to within TOLERANCE: only the order of floating-point sums differs), in one run directory with one set of
  event files;
- `trainctl train trainer.devices=2` with one process killed by SIGKILL mid-epoch, a resume with 2 processes
  that one of them stops by SIGINT, and a last resume: bit-identical weights to the uninterrupted run.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest
import torch

from trainctl.api import train
from trainctl.commands.train import multirun_preflight, preflight
from trainctl.config.compose import compose
from trainctl.data.shard import Shard
from trainctl.data.splits import Split, identity
from trainctl.engine import run as engine_run
from trainctl.engine.checkpoint import load_checkpoint
from trainctl.engine.distributed import join_group
from trainctl.errors import UserError
from trainctl.metrics import WALL_CLOCK

from conftest import run_cli, run_dirs

# 512 training samples, global batch 32: 16 optimizer steps per epoch, 3 epochs. No dropout, so one process and
# two draw nothing at random but the (seed, epoch) order both share, and their metrics can be compared.
RUN = ["model=mlp", "model.hidden=[32]", "dataset=blobs", "dataset.n_train=640", "dataset.n_test=128",
       "trainer.epochs=3", "trainer.batch_size=32", "trainer.progress=false", "device=cpu",
       "checkpoint.every_n_steps=5", "tensorboard.images=false", "tensorboard.figures=false"]  # no matplotlib
TOLERANCE = dict(rel=1e-5, abs=1e-6)  # metrics of 1 and 2 processes: float32 sums in another order


def metrics(run):
    return json.loads((run / "metrics.json").read_text())


def weights(run):
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


def check(proc, code=0):
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The uninterrupted 2-process run, started by the user's own torchrun."""
    cwd = tmp_path_factory.mktemp("torchrun")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "trainctl", "train", *RUN], cwd=cwd, capture_output=True, text=True, timeout=300)
    check(proc)
    [run] = run_dirs(cwd)  # rank 1 composed a name of its own; rank 0's directory is the only one
    return run, proc.stdout + proc.stderr


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path, two_processes):
    run, output = two_processes
    assert "data parallel: 2 processes (gloo), global batch 32, 16 per process" in (run / "train.log").read_text()
    assert output.count("outputs in") == 1  # one process talks
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert not (run / "steps").exists()  # per-step curves in the run's own file
    check(run_cli(["train", *RUN], tmp_path))
    [single] = run_dirs(tmp_path)
    one, two = metrics(single), metrics(run)
    compared = [k for k in one if k.startswith(("val/", "test/", "train/")) and isinstance(one[k], float)]
    assert {"val/loss", "val/acc", "test/loss", "test/acc"} <= set(compared)
    assert {k: two[k] for k in compared} == pytest.approx({k: one[k] for k in compared}, **TOLERANCE)
    assert (two["val/samples"], two["test/samples"], two["epochs"]) == (one["val/samples"], one["test/samples"], 3)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert [sorted(r) for r in state["ranks"]] == [["partial", "rng"]] * 2  # every process's RNG state
    assert not torch.equal(state["ranks"][0]["rng"]["torch"], state["ranks"][1]["rng"]["torch"])


@pytest.mark.slow
def test_killed_and_interrupted_processes_resume_bit_identical(tmp_path, two_processes):
    reference, _ = two_processes
    devices = ["trainer.devices=2"]
    # Rank 1 is killed after step 23 (mid-epoch 2; last.pt holds step 20): rank 0 stops with a message.
    output = check(run_cli(["train", *RUN, *devices], tmp_path, TRAINCTL_FAULTS="kill_at_step=23,fault_rank=1"),
                   128 + signal.SIGKILL)
    assert "the process of rank 1" in output and "was killed by SIGKILL" in output
    assert "lost contact with the others" in output
    [run] = run_dirs(tmp_path)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 20
    # Resumed with 2 processes; SIGINT to rank 1 only after step 30: both stop at that step, rank 0 saves once.
    output = check(run_cli(["train", f"resume={run}"], tmp_path,
                           TRAINCTL_FAULTS="signal_at_step=30:INT,fault_rank=1"), 130)
    assert output.count("stopped by SIGINT: saved checkpoints/last.pt") == 1
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"], state["batches_in_epoch"], len(state["ranks"])) == (1, 30, 14, 2)
    check(run_cli(["train", f"resume={run}"], tmp_path, subprocess=True))  # the resume replays torchrun's 2 processes
    assert run_dirs(tmp_path) == [run]
    ours, theirs = weights(run), weights(reference)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert ({k: v for k, v in metrics(run).items() if k not in WALL_CLOCK}
            == {k: v for k, v in metrics(reference).items() if k not in WALL_CLOCK})


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_a_one_process_group_trains_exactly_like_a_plain_run(tmp_path, monkeypatch, device):
    """Every collective operation of data-parallel training (the model in DDP, sums of metrics, agreed stops,
    broadcasts, gathered RNG states) through a real process group of one: gloo on the CPU, NCCL for the GPU's
    tensors under `--device cuda`. It changes nothing: the same weights and metrics as a run without a group."""
    overrides = [*RUN, f"device={device}", "trainer.deterministic=true"]
    plain = train(compose(overrides), run_dir=tmp_path / "plain")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    backends = []

    def one_process_group(cfg):
        group = join_group(cfg, rank=0, local_rank=0, world=1)
        backends.append(torch.distributed.get_backend_config())
        return group

    monkeypatch.setattr(engine_run, "setup", one_process_group)
    grouped = train(compose(overrides), run_dir=tmp_path / "group")
    assert not torch.distributed.is_initialized()  # the run closed its group
    assert len(backends) == 1 and ("cuda:nccl" in backends[0]) == (device == "cuda"), backends
    assert len(load_checkpoint(tmp_path / "group" / "checkpoints" / "last.pt")["ranks"]) == 1
    compared = [k for k in plain if k.startswith(("val/", "test/")) and isinstance(plain[k], float)]
    assert {k: grouped[k] for k in compared} == pytest.approx({k: plain[k] for k in compared}, **TOLERANCE)
    ours, theirs = weights(tmp_path / "group"), weights(tmp_path / "plain")
    assert all(torch.allclose(ours[k], theirs[k], **{"rtol": 1e-5, "atol": 1e-6}) for k in theirs)


def test_shards_split_each_global_batch_and_evaluate_each_sample_once():
    n, world, batch = 11, 2, 4
    split = Split(torch.arange(n).float().view(n, 1), torch.arange(n))
    single = [y for _, y in split.shuffled(batch, identity, seed=3, epoch=1)]
    shards = [list(Shard(split, rank, world).shuffled(batch, identity, seed=3, epoch=1)) for rank in range(world)]
    assert [len(s) for s in shards] == [len(single)] * world  # equal shards, as many batches as one process
    for k, whole in enumerate(single[:-1]):  # the last global batch is padded with the epoch's first samples
        assert sorted(torch.cat([s[k][1] for s in shards]).tolist()) == sorted(whole.tolist())
    evaluated = [y for rank in range(world) for _, y in Shard(split, rank, world).ordered(batch, identity)]
    assert sorted(torch.cat(evaluated).tolist()) == list(range(n))
    capped = [y for rank in range(world) for _, y in Shard(split, rank, world).ordered(batch, identity, 2)]
    assert sorted(torch.cat(capped).tolist()) == list(range(2 * batch))  # max_eval_batches: the same samples


@pytest.mark.parametrize(("overrides", "message"), [
    (["trainer.devices=0"], r"trainer.devices=0 is out of range: it must be >= 1"),
    (["trainer.devices=2", "trainer.batch_size=33"], r"batch_size=33 \(the global batch\) does not split evenly"),
    (["trainer.sync_batchnorm=true"], r"sync_batchnorm=true synchronises .* this run has one"),
    (["trainer.devices=2", "trainer.sync_batchnorm=true"], r"needs CUDA GPUs"),
    (["trainer.devices=2", "cv.folds=3"], r"cv.folds=3 runs its folds in one process"),
])
def test_bad_device_counts_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        preflight(compose(["experiment=smoke", *overrides]))


def test_auto_is_every_gpu_or_one_process_and_sweeps_refuse_several():
    from trainctl.commands.launch import processes

    auto = compose(["experiment=smoke", "device=auto", "trainer.devices=auto"])
    assert processes(auto) == max(torch.cuda.device_count(), 1)
    with pytest.raises(UserError, match=r"cannot be part of a multirun \(-m\): sweep with trainer.devices=1"):
        multirun_preflight(compose(["experiment=smoke", "trainer.devices=2"]))


def test_the_settings_are_listed_with_their_help():
    from trainctl.commands.list import section_rows

    rows = {key: (default, about) for key, default, about in section_rows("trainer")}
    assert rows["trainer.devices"][0] == "1" and "the global batch" in rows["trainer.devices"][1]
    assert rows["trainer.sync_batchnorm"] == ("false", rows["trainer.sync_batchnorm"][1])
    assert "SyncBatchNorm" in rows["trainer.sync_batchnorm"][1] and "(>= 1)" in rows["trainer.dist_timeout_s"][1]
