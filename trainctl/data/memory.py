"""Will a dataset fit in memory? Estimates made before allocating, and out-of-memory errors turned into advice.

Why estimate first: on Linux a huge allocation often succeeds (overcommit) and the kernel's OOM killer then
ends the process with no message at all, so `dataset.n_train=10000000000` must be refused by arithmetic. This
module never imports torch: the check also runs in the CLI's preflight, before any output is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from trainctl.errors import UserError

# Peak bytes while generating and splitting, as a multiple of the finished tensors: the generators build a few
# temporaries of the same size, and the validation split copies the training set once more.
GENERATION_OVERHEAD = 4
SAFE_SHARE = 0.5  # suggest sizes that leave half of the free memory to the model and the training loop

# The config key(s) to lower when a dataset does not fit, per dataset name.
SIZE_KEYS = {
    "blobs": "dataset.n_train / dataset.n_test",
    "sine": "dataset.n_train / dataset.n_test / dataset.length",
    "imagefolder": "dataset.image_size, or stream it with dataset.in_memory=false",
}


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup (v2) memory limit, if it has one (containers, CI runners)."""
    limit, current = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    try:
        text = limit.read_text().strip()
        return None if text == "max" else max(0, int(text) - int(current.read_text()))
    except (OSError, ValueError):
        return None


def available_bytes() -> int | None:
    """Memory this process can still allocate without swapping, or None when the system does not say."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    room = _cgroup_room()
    return found if room is None else min(found, room)


def generated_sample_bytes(cfg: DictConfig) -> int | None:
    """Bytes of one generated sample (inputs + target) as stored; None for datasets that are not generated."""
    if cfg.get("name") == "blobs":
        return 2 * 4 + 8  # two float32 coordinates, an int64 label
    if cfg.get("name") == "sine":
        return 2 * cfg.length * 4  # float32 input and target sequences
    return None


def check_generated_fits(cfg: DictConfig, available: int | None = None) -> None:
    """Refuse a generated dataset whose estimated peak size exceeds the free memory, naming the key to lower
    and a value that fits."""
    per_sample = generated_sample_bytes(cfg)
    available = available_bytes() if available is None else available
    if per_sample is None or available is None:
        return
    peak = per_sample * GENERATION_OVERHEAD
    needed = peak * (cfg.n_train + cfg.n_test)
    if needed <= available:
        return
    key, other = ("n_train", "n_test") if cfg.n_train >= cfg.n_test else ("n_test", "n_train")
    fits = int(available * SAFE_SHARE) // peak - cfg[other]
    advice = (f"lower dataset.{key} to at most {fits:,} (that fits in half the free memory, leaving the rest "
              "for training)" if fits >= 2 else f"lower dataset.{key} and dataset.{other}")
    if "length" in cfg:
        advice += ", or lower dataset.length"
    raise UserError(
        f"dataset.{key}={cfg[key]} is too large: the '{cfg.name}' dataset would need about "
        f"{format_bytes(needed)} of memory to generate, and {format_bytes(available)} is available. Fix: {advice}."
    )


def is_out_of_memory(error: BaseException) -> bool:
    """True for the ways an allocation failure surfaces: MemoryError, torch's OutOfMemoryError (a
    RuntimeError), and the CPU allocator's RuntimeError ("can't allocate memory")."""
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        s in text for s in ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory"))


def out_of_memory_error(cfg: DictConfig, error: BaseException) -> UserError:
    """A UserError for an allocation that failed while building `cfg`'s dataset, naming what to lower."""
    name = cfg.get("name")
    fix = f"lower {SIZE_KEYS[name]}" if name in SIZE_KEYS else "free memory or use a machine with more"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return UserError(f"not enough memory to build the '{name}' dataset ({first_line}). Fix: {fix}.")
