"""`trainer.sync_debug`: make a host sync inside the training steps a warning or an error, on CUDA.

Why: on a GPU a small model is launch-bound, and one `.item()`, `.tolist()`, `nonzero()` or boolean-mask index
per step (in the loop, or in a user's model or loss) makes the host wait for the device every step, which can
halve the speed without any error. torch can flag such calls (`torch.cuda.set_sync_debug_mode`); the loop arms
that check over the steps and disarms it where it syncs on purpose (log points, checkpoints, epoch ends,
callbacks), so what is reported is a sync nobody meant.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from typing import Iterator

import torch

from trainctl.errors import UserError

SYNC_DEBUG_LEVELS = {"off": 0, "warn": 1, "error": 2}


class SyncGuard:
    """Arms torch's sync check over the hot loop; does nothing off CUDA or with `sync_debug=off`."""

    def __init__(self, mode: str, device: torch.device) -> None:
        self.level = SYNC_DEBUG_LEVELS[mode] if device.type == "cuda" else 0

    def arm(self) -> None:
        if self.level:
            torch.cuda.set_sync_debug_mode(self.level)

    def disarm(self) -> None:
        if self.level:
            torch.cuda.set_sync_debug_mode(0)

    @contextlib.contextmanager
    def allowed(self) -> Iterator[None]:
        """A stretch of the loop that syncs on purpose (a log point, a callback)."""
        self.disarm()
        try:
            yield
        finally:
            self.arm()


def is_sync_error(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and "synchronizing CUDA operation" in str(error)


def sync_error(error: BaseException) -> UserError:
    """The message for a sync the armed check refused: where it happened (the innermost frame outside torch),
    and what to do about it."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f"{os.sep}torch{os.sep}" not in f.filename]
    where = f" at {frames[-1].filename}:{frames[-1].lineno} ({(frames[-1].line or '').strip()})" if frames else ""
    return UserError(
        f"trainer.sync_debug=error: a training step made the host wait for the GPU{where}. Keep values on the "
        "device in the model and the loss (no .item(), .tolist(), .cpu(), print of a tensor, nonzero() or "
        "boolean-mask indexing per step), or set trainer.sync_debug=warn to list them all, or off.")
