"""One GPU per trial: with `hydra.sweeper.n_jobs` trials at once on a machine with GPUs, each running trial is
lent a GPU from a pool and gives it back when it ends (`hydra.sweeper.gpus_per_trial` < 1 lets trials share one).

The GPU reaches the trial as `device.index` in its overrides, not as CUDA_VISIBLE_DEVICES: the joblib launcher's
loky workers are reused from trial to trial, and CUDA reads CUDA_VISIBLE_DEVICES once, when a process first
initialises it, so a worker that ran a trial on GPU 0 would run its next trial on GPU 0 whatever the variable
said by then. `device.index` is part of each job's own config (the run calls `torch.cuda.set_device` and puts
its tensors on `cuda:N`), so it holds in a fresh worker and a reused one alike, and the run's `.hydra/` records
where the trial ran.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Callable

from trainctl.errors import UserError

SETTING = "hydra.sweeper.gpus_per_trial"
log = logging.getLogger("trainctl.sweep")


def cuda_count() -> int:
    from trainctl.device import device_count  # torch is loaded only when a sweep may lend GPUs

    return device_count("cuda")


def trials_per_gpu(gpus_per_trial: float) -> int:
    """How many trials one GPU takes at once: 1 for 1.0, 2 for 0.5, 3 for 0.3 (a share rounds down to whole
    trials)."""
    return max(1, math.floor(1 / gpus_per_trial + 1e-9))


class GpuPool:
    """The GPUs of this machine, each with room for `per_gpu` trials; the sweep's worker threads borrow from it."""

    def __init__(self, count: int, per_gpu: int) -> None:
        self.per_gpu = per_gpu
        self.running = [0] * count  # trials on each GPU now
        self.lock = threading.Lock()

    def acquire(self) -> int:
        """The least busy GPU (the lowest index among equals). The sweep never runs more trials than the pool
        has room for (`plan_pool` refuses it), so there is always one."""
        with self.lock:
            index = min(range(len(self.running)), key=lambda i: (self.running[i], i))
            if self.running[index] >= self.per_gpu:
                raise RuntimeError(f"no GPU has room for another trial: {self.running}")
            self.running[index] += 1
            return index

    def lend(self, trial: Any) -> int:
        """A GPU for `trial`, named in its `device` attribute."""
        index = self.acquire()
        trial.set_user_attr("device", f"cuda:{index}")
        return index

    def release(self, index: int) -> None:
        with self.lock:
            self.running[index] -= 1


def overrides_for(index: int) -> list[str]:
    """What a trial lent GPU `index` adds to its overrides (`device=auto` becomes `cuda` too)."""
    return ["device.name=cuda", f"device.index={index}"]


def plan_pool(device: Any, swept: list[str], n_jobs: int, gpus_per_trial: float,
              gpu_count: Callable[[], int] = cuda_count) -> GpuPool | None:
    """The pool the sweep lends GPUs from, or None when trials run where `device` says.

    None when one trial runs at a time, when the search space sweeps the device itself, for `device=cpu` or
    `mps`, for a GPU the command fixes (`device=cuda:1`: every trial runs there, as asked), and for `auto` on a
    machine without CUDA. More trials at once than the GPUs hold is refused.
    """
    if n_jobs == 1 or any(key == "device" or key.startswith("device.") for key in swept):
        return None
    if device.name not in ("auto", "cuda") or device.get("index") is not None:
        return None
    count = gpu_count()
    if count == 0:
        return None  # auto on a machine without CUDA; device=cuda there was refused before the sweep began
    per_gpu = trials_per_gpu(gpus_per_trial)
    if n_jobs > count * per_gpu:
        share = 1 / math.ceil(n_jobs / count)
        raise UserError(
            f"hydra.sweeper.n_jobs={n_jobs} trials at once need more GPUs than this machine has: {count} "
            f"({', '.join(f'cuda:{i}' for i in range(count))}), each taking {per_gpu} trial(s) at a time with "
            f"{SETTING}={gpus_per_trial:g}. Lower hydra.sweeper.n_jobs to {count * per_gpu}, or let trials share "
            f"a GPU with {SETTING}={share:.3g} ({math.ceil(n_jobs / count)} trials per GPU), or use device=cpu")
    log.info("%d trials at once on %d GPU(s), %d per GPU: each running trial is lent one (device.index)", n_jobs,
             count, per_gpu)
    return GpuPool(count, per_gpu)
