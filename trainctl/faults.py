"""Test-only fault injection, switched on by the environment variable TRAINCTL_FAULTS.

    TRAINCTL_FAULTS="kill_at_step=37"       SIGKILL this process right after optimizer step 37
    TRAINCTL_FAULTS="signal_at_step=12:INT" send SIGINT (or TERM) to this process after step 12
    TRAINCTL_FAULTS="kill_in_save=3"        SIGKILL during the 3rd checkpoint save, before its rename
    TRAINCTL_FAULTS="kill_after_save=2"     SIGKILL right after the 2nd checkpoint save
    TRAINCTL_FAULTS="nan_at_batch=5"        make the loss of training batch 5 (counted over the run) NaN

Several faults combine with commas. With the variable unset every check is one dict lookup.
"""

from __future__ import annotations

import os
import signal

FAULTS: dict[str, str] = dict(
    item.split("=", 1) for item in os.environ.get("TRAINCTL_FAULTS", "").split(",") if "=" in item
)
_saves = 0


def after_step(step: int) -> None:
    if not FAULTS:
        return
    if FAULTS.get("kill_at_step") == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
    at, _, name = FAULTS.get("signal_at_step", "").partition(":")
    if at == str(step):
        os.kill(os.getpid(), getattr(signal, f"SIG{name or 'INT'}"))


def during_save() -> None:
    """Called between writing a checkpoint's temp file and renaming it over the old one."""
    global _saves
    if not FAULTS:
        return
    _saves += 1
    if FAULTS.get("kill_in_save") == str(_saves):
        os.kill(os.getpid(), signal.SIGKILL)


def after_save() -> None:
    if FAULTS and FAULTS.get("kill_after_save") == str(_saves):
        os.kill(os.getpid(), signal.SIGKILL)


def nan_batch() -> int | None:
    value = FAULTS.get("nan_at_batch") if FAULTS else None
    return int(value) if value is not None else None
