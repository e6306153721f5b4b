"""Signals, from the first line of `trainctl` to its last: every SIGINT or SIGTERM ends the command with exit
130 or 143 and one line that says so, never Python's -2/-15 without a word.

While the loop trains, `GracefulStop` holds the handlers: the first signal asks the loop to stop at the next step
boundary (it saves a checkpoint and flushes its logs, then exits 130 or 143). Everywhere else (imports,
composing the config, loading data, `eval`, the test pass) `install_process_handlers`' handler raises
`SignalInterrupt` where the program stands, as Python raises KeyboardInterrupt for Ctrl-C: files are written
atomically, and `trainctl train` removes a run directory that holds nothing of the run yet. A second signal while
the first is handled exits at once, with the same code.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_text(signum: int) -> str:
    name = signal.Signals(signum).name
    return f"{name} (Ctrl-C)" if signum == signal.SIGINT else name


class SignalInterrupt(KeyboardInterrupt):
    """A SIGINT or SIGTERM outside the training loop. A KeyboardInterrupt, so no `except Exception` (a library's,
    or one that turns errors into messages) takes it for an error and carries on."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal_text(signum)}")
        self.signum = signum
        self.exit_code = 128 + signum


_first: int | None = None  # the signal being handled, if any


def signal_pending() -> int | None:
    """The signal this command is stopping on, if one arrived: an error raised while it unwinds (a library's
    lock released twice because the interrupt struck inside its critical section) is that stop, not a bug."""
    return _first


def _exit_now(signum: int) -> None:
    os.write(2, f"stopped by {signal_text(signum)} again: exiting at once\n".encode())
    os._exit(128 + signum)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    global _first
    if _first is not None:  # a second signal while the first unwinds: the user wants out now
        _exit_now(signum)
    _first = signum
    raise SignalInterrupt(signum)


def _redeliver_swallowed(unraisable: Any) -> None:
    """A signal whose handler ran inside a weakref callback or a `__del__`, where Python only prints the
    exception ("Exception ignored in ...") and goes on: send it again, so it stops the command where it can."""
    global _first
    if isinstance(unraisable.exc_value, SignalInterrupt) and _first is not None:
        signum, _first = _first, None
        # From another thread, a moment later: sent from here, its handler would run inside this hook, swallowed
        # again; the main thread handles it at its next step outside any callback.
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    sys.__unraisablehook__(unraisable)


def _exit_at_shutdown(signum: int, frame: FrameType | None) -> None:
    """After the command's work: a signal while Python shuts down (its atexit hooks, library threads joining)
    ends it with the signal's code, not an 'Exception ignored' traceback."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001  (a closed pipe: nothing more to say)
            pass
    os._exit(128 + signum)


def exit_on_signals_at_shutdown() -> None:
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _exit_at_shutdown)


def _ignore_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def ignore_signals_after_atexit() -> None:
    """Registered before any other exit hook, so it runs after them all: past that point Python resets a
    handler written in Python to the default (a signal would then end the process as -2/-15) while it tears
    its modules down, which is finite; an ignored signal stays ignored and the exit code is the command's."""
    import atexit

    if threading.current_thread() is threading.main_thread():
        atexit.register(_ignore_signals)


def install_process_handlers() -> Callable[[], None]:
    """SIGINT and SIGTERM raise `SignalInterrupt` from now on; returns what puts the previous handlers back."""
    global _first
    _first = None
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        return lambda: None
    previous = {signum: signal.signal(signum, _raise_interrupt) for signum in STOP_SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _redeliver_swallowed

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook

    return restore


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
        if self.signum is not None:
            _exit_now(signum)  # a second signal: the user wants out now; the last checkpoint stands
        self.signum = signum

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
