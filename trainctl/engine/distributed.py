"""Data-parallel training: the process group, this process's rank, and the few collective operations the engine
needs (sums of metrics, agreement on stopping, the run directory and RNG states shared with rank 0).

`setup(cfg)` returns `Single()` for an ordinary run: an object whose operations do nothing (a sum is the value
itself, a broadcast returns its argument), so a single process pays nothing and the engine has no branches for
it. Under torchrun (WORLD_SIZE > 1 in the environment, set by `trainctl train trainer.devices=N` itself or by a
user's `torchrun`), it returns a `Group` over `torch.distributed`: gloo for CPU tensors, NCCL for CUDA ones, and
a timeout on every collective operation so a process whose peer died stops with a message instead of hanging.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import re
from typing import Any, Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.data.shard import Shard
from trainctl.data.splits import SplitLike, derive_seed
from trainctl.device import config_device, device_count
from trainctl.engine.signals import GracefulStop
from trainctl.errors import UserError

log = logging.getLogger("trainctl")

PROCESS_STREAM = 4  # seeds each process's own randomness (dropout) in a data-parallel run
STOP_CHECK_EVERY = 10  # optimizer steps between the processes' checks for a stop signal (one tiny all-reduce)


class DistributedFailure(Exception):
    """Another process of the run died or stopped answering; this one stops too, writing nothing more."""


def on_gpus(cfg: DictConfig) -> bool:
    """Whether the processes of a data-parallel run train on CUDA GPUs (one each) rather than the CPU."""
    return cfg.device.name in ("auto", "cuda") and device_count("cuda") > 0


def env_world() -> tuple[int, int, int]:
    """(rank, local rank, world size) as torchrun sets them; (0, 0, 1) outside torchrun."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def requested_processes(cfg: DictConfig) -> int:
    """How many processes `trainer.devices` asks for on this machine: a number, or auto (every visible GPU when
    the run is on CUDA, else 1)."""
    devices = cfg.trainer.get("devices", 1)
    if devices in (None, 1):
        return 1
    if devices == "auto":
        return device_count("cuda") if on_gpus(cfg) else 1
    return int(devices)


def check_devices(cfg: DictConfig) -> int:
    """The number of processes this command will start, after the checks that need the hardware; raises
    UserError. Under torchrun the processes already exist: their number is torchrun's."""
    _, _, world = env_world()
    n = world if world > 1 else requested_processes(cfg)
    name, asked = cfg.device.name, cfg.trainer.get("devices", 1)
    if n > 1 and (name.partition(":")[2] or cfg.device.get("index") is not None):
        raise UserError(f"trainer.devices={asked} gives each process its own GPU (cuda:<local rank>), so it takes no "
                        f"device index: use device=cuda or device=auto.")
    if n > 1 and name == "mps":
        raise UserError("trainer.devices > 1 needs CUDA GPUs or the CPU (gloo); mps runs one process: set "
                        "trainer.devices=1 or device=cpu.")
    gpus = device_count("cuda")
    on_cuda = name == "cuda" or (name == "auto" and gpus > 0)
    if on_cuda and world <= 1 and n > gpus:
        raise UserError(f"trainer.devices={asked} asks for {n} GPUs but this machine has {gpus}: choose at "
                        f"most {gpus} (or trainer.devices=auto for all of them).")
    if cfg.trainer.get("sync_batchnorm") and n <= 1:
        raise UserError("trainer.sync_batchnorm=true synchronises batch norm across processes, and this run has "
                        "one: set trainer.devices=N (N > 1) or drop trainer.sync_batchnorm.")
    if cfg.trainer.get("sync_batchnorm") and not on_cuda:
        raise UserError("trainer.sync_batchnorm=true needs CUDA GPUs (torch's SyncBatchNorm has no CPU version): "
                        "train on GPUs or set trainer.sync_batchnorm=false.")
    if n > 1 and cfg.trainer.batch_size % n:
        raise UserError(f"trainer.batch_size={cfg.trainer.batch_size} (the global batch) does not split evenly over "
                        f"{n} processes: choose a multiple of {n}.")
    if n > 1 and cfg.cv.folds > 1:
        raise UserError(f"cv.folds={cfg.cv.folds} runs in one process: set trainer.devices=1 for cross-validation.")
    return n


class Single:
    """One process: every collective operation is the identity."""

    rank, local_rank, world, enabled = 0, 0, 1, False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, cfg: DictConfig) -> torch.device:
        return config_device(cfg.device)

    def shard(self, split: SplitLike) -> SplitLike:
        return split

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def reduce(self, accumulator: Any) -> None:
        """Add every process's metric sums into `accumulator` (a MetricAccumulator)."""

    def first_bad(self, first_bad: torch.Tensor) -> int:
        return int(first_bad)

    def broadcast(self, value: Any) -> Any:
        return value

    def gather(self, value: Any) -> list[Any]:
        return [value]

    def seed_process(self, seed: int) -> None: ...

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def graceful_stop(self) -> GracefulStop:
        return GracefulStop()

    def main_only(self, callbacks: Sequence[Any]) -> list[Any]:
        return list(callbacks)

    def close(self) -> None: ...


class Group(Single):
    """This process's place in a torch.distributed process group."""

    enabled = True

    def __init__(self, rank: int, local_rank: int, world: int) -> None:
        self.rank, self.local_rank, self.world = rank, local_rank, world

    def device(self, cfg: DictConfig) -> torch.device:
        if on_gpus(cfg):
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def shard(self, split: SplitLike) -> SplitLike:
        return Shard(split, self.rank, self.world)  # type: ignore[arg-type]

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        torch.distributed.all_reduce(tensor)
        return tensor

    def reduce(self, accumulator: Any) -> None:
        accumulator.reduce(self.all_sum)

    def first_bad(self, first_bad: torch.Tensor) -> int:
        """The earliest batch any process found non-finite (-1: none), so all stop at the same point."""
        none = torch.iinfo(torch.long).max
        value = torch.where(first_bad < 0, none, first_bad).to(torch.long)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
        return -1 if int(value) == none else int(value)

    def broadcast(self, value: Any) -> Any:
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, value)
        return out

    def seed_process(self, seed: int) -> None:
        """Each process its own dropout masks (the weights were initialised alike, from `seed`, before this)."""
        own = derive_seed(seed, PROCESS_STREAM, self.rank)
        torch.manual_seed(own)
        random.seed(own)

    def wrap(self, model: nn.Module) -> nn.Module:
        on_cuda = next(model.parameters(), torch.empty(0)).device.type == "cuda"
        return nn.parallel.DistributedDataParallel(model, device_ids=[self.local_rank] if on_cuda else None)

    def graceful_stop(self) -> GracefulStop:
        return AgreedStop(self)

    def main_only(self, callbacks: Sequence[Any]) -> list[Any]:
        """Callbacks watch training on rank 0; those that take part in collective operations (checkpointing
        gathers every process's RNG state) run everywhere: they say so with `all_ranks = True`."""
        return [c for c in callbacks if self.is_main or getattr(c, "all_ranks", False)]

    def close(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class AgreedStop(GracefulStop):
    """A signal to any process stops them all at the same step boundary: every STOP_CHECK_EVERY optimizer steps
    (and at each epoch's end, `settled()`) the processes all-reduce the signal they received, 0 for none."""

    def __init__(self, group: Group) -> None:
        super().__init__()
        self.group, self.calls = group, 0
        self.flag = torch.zeros((), dtype=torch.long)  # a CPU tensor: gloo, no wait for the GPU

    @property
    def requested(self) -> bool:
        self.calls += 1
        return self.calls % STOP_CHECK_EVERY == 0 and self.settled()

    def __exit__(self, *exc: Any) -> None:
        """The handlers stay: when one process has ended, torchrun sends SIGTERM to the others, which may still
        be finishing what they must (rank 0 writing its checkpoint, metrics.json, its last message)."""

    def settled(self) -> bool:
        self.flag.fill_(self.signum or 0)
        torch.distributed.all_reduce(self.flag, op=torch.distributed.ReduceOp.MAX)
        if int(self.flag):
            self.signum = int(self.flag)
        return bool(int(self.flag))


def setup(cfg: DictConfig) -> Single:
    """This process's group: `Single()` unless torchrun started several processes."""
    rank, local_rank, world = env_world()
    if world <= 1:
        if requested_processes(cfg) > 1:
            raise UserError(f"trainer.devices={cfg.trainer.devices} starts several processes from the command line "
                            "(trainctl train) or torchrun; train(cfg) in Python runs one: launch your script with "
                            f"torchrun --nproc_per_node={requested_processes(cfg)}.")
        return Single()
    return join_group(cfg, rank, local_rank, world)


def join_group(cfg: DictConfig, rank: int, local_rank: int, world: int) -> Group:
    """Join the process group torchrun's environment describes (MASTER_ADDR, MASTER_PORT): NCCL for CUDA
    tensors when there is a GPU, gloo for CPU ones. Any world size, one included (the GPU tests run a
    one-process NCCL group this way)."""
    check_devices(cfg)
    cuda = on_gpus(cfg) and torch.distributed.is_nccl_available()  # a CPU run on a GPU machine is gloo's only
    torch.distributed.init_process_group(
        backend="cpu:gloo,cuda:nccl" if cuda else "gloo", rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=cfg.trainer.dist_timeout_s))
    if rank == 0:
        log.info("data parallel: %d processes (%s), global batch %d, %d per process", world,
                 "gloo and NCCL" if cuda else "gloo", cfg.trainer.batch_size, cfg.trainer.batch_size // world)
    return Group(rank, local_rank, world)


def is_peer_failure(error: BaseException) -> bool:
    """An error from a collective operation whose peer died, closed its connection or timed out."""
    if isinstance(error, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        k in text for k in ("Connection closed", "Connection reset", "Broken pipe", "timed out", "Timed out",
                            "gloo", "NCCL", "ProcessGroup"))


def peer_failure(error: BaseException, group: Single, run_dir: Any) -> DistributedFailure:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    first = re.sub(r"^\[[^\]]*\] ", "", first).split(". This is typically", 1)[0]  # gloo's source position
    return DistributedFailure(
        f"process {group.rank} of {group.world} lost contact with the others ({first[:200]}): another process "
        f"died, was killed, or did not answer within trainer.dist_timeout_s. This one stopped too; {run_dir} "
        f"keeps its last checkpoint: continue with trainctl train resume={run_dir}")
