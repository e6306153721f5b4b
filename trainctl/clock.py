"""The run's own clock: seconds from the moment the process started (not from when trainctl was imported), and
the phases a run's time went to, for `metrics.json` (`time/startup_s`, `time/finish_s`, `time/phases`).

A phase ends where it is marked: `mark("data")` closes the phase that built the data. Marking is a list append,
never in the hot loop. No torch here: the command line imports this first.
"""

from __future__ import annotations

import os
import time


def _seconds_since_process_start() -> float | None:
    """From the kernel: the process's start time (/proc/self/stat, in clock ticks since boot) against the uptime;
    None where there is no /proc."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


_imported = time.perf_counter()
# perf_counter() at the process's start; where the kernel cannot say, at the import of this module (the first
# thing `trainctl` imports).
# A process keeps its start time across exec: `bash -c '... && trainctl train'` execs trainctl in the shell's
# process, which may have lived for minutes. Python reaches this import within a second or two of its own start,
# so a start further back than that was someone else's: count from here then.
_since_start = _seconds_since_process_start() or 0.0
PROCESS_START = _imported - (_since_start if _since_start < 5.0 else 0.0)

_marks: list[tuple[str, float]] = []
_origin: float | None = None  # where the current run's clock starts
_process_is_the_run = False  # set by the command line when it is the process's entry point


def mark(phase: str) -> None:
    """The phase `phase` ends now."""
    _marks.append((phase, time.perf_counter()))


def process_is_the_run() -> None:
    """The command line is this process's entry point: its first run's clock starts with the process."""
    global _process_is_the_run
    _process_is_the_run = True


def begin_run() -> float:
    """Start a run's clock and return its origin (a perf_counter() value): the process's start for the first
    run of a `trainctl` process, whose start-up is the run's; now for any other run (a multirun's next job, the
    next fold, `train()` called from Python), whose earlier phases are not its own."""
    global _origin, _process_is_the_run
    if _process_is_the_run:
        _origin, _process_is_the_run = PROCESS_START, False
    else:
        _origin = time.perf_counter()
        _marks.clear()
    return _origin


def run_origin() -> float:
    """The current run's origin (see `begin_run`), the process's start before any run began."""
    return PROCESS_START if _origin is None else _origin


def phases() -> dict[str, float]:
    """Seconds per phase marked since the run's origin, in order (a phase marked twice adds up)."""
    out: dict[str, float] = {}
    previous = run_origin()
    for name, at in _marks:
        if at < previous:
            continue
        out[name] = round(out.get(name, 0.0) + at - previous, 4)
        previous = at
    return out
