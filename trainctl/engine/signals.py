"""Graceful stops: the first SIGINT or SIGTERM asks the loop to stop at the next step boundary (it saves a
checkpoint and flushes its logs, then exits 130 or 143); a second SIGINT exits at once."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any


class Interrupted(Exception):
    """The run stopped on a signal after saving; the process should exit with `exit_code`."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum


class GracefulStop:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def settled(self) -> bool:
        """Whether to stop, asked where every process of a data-parallel run asks it (an epoch's end)."""
        return self.requested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            os._exit(130)  # a second Ctrl-C: the user wants out now
        self.signum = signum

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
