"""A `torch.profiler` trace of a few training steps (`trainer.profile=true`), for Perfetto or chrome://tracing.

The profiler starts with the run; the first optimizer step is its warm-up (not recorded: first calls allocate
and pick kernels), the next `trainer.profile_steps` are recorded with CPU activity, plus CUDA kernels when the
device is cuda. It writes:

    <run>/profile/trace.json       the timeline (trace.json.gz when larger than GZIP_ABOVE bytes)
    <run>/profile/top_ops.txt      the operators that took most time of their own (self time)

Steps are counted through `on_train_step`; once the trace is written that method returns at once, so the rest
of the run pays one attribute check per step. A run that ends (or fails) before the last recorded step writes
what it recorded at its end.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from torch.profiler import ProfilerActivity, profile, schedule

from trainctl.engine.events import Callback
from trainctl.engine.step import Trainer
from trainctl.files import atomic_write_bytes

log = logging.getLogger("trainctl")

DIR = "profile"
TRACE = "trace.json"
TOP_OPS = "top_ops.txt"
GZIP_ABOVE = 50_000_000  # bytes: a larger trace is gzipped (both viewers open .json.gz)
ROWS = 25


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def top_ops(prof: profile, on_cuda: bool) -> str:
    """Tables of the operators by self time: CPU, and with CUDA also by time on the GPU."""
    averages = prof.key_averages()
    tables = [("CPU self time", "self_cpu_time_total")]
    if on_cuda:
        tables.insert(0, ("GPU self time", "self_device_time_total"))
    return "".join(f"Top operators by {title}\n{averages.table(sort_by=key, row_limit=ROWS)}\n\n"
                   for title, key in tables)


def export_trace(prof: profile, folder: Path) -> Path:
    """The Chrome-format trace in `folder`, gzipped when large."""
    path = folder / TRACE
    prof.export_chrome_trace(str(path))
    if path.stat().st_size <= GZIP_ABOVE:
        return path
    packed = path.with_name(TRACE + ".gz")
    with open(path, "rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)
    path.unlink()
    return packed


class StepProfiler(Callback):
    """Profiles `steps` optimizer steps after one warm-up step (see the module)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.prof: profile | None = None  # None before the run and once the profile is written
        self.seen = 0  # optimizer steps since the profiler started
        self.written = False
        self.ending = False  # the run ended before the last profiled step: the trace holds its end too
        self.on_cuda = False
        self.folder = Path(DIR)

    def on_fit_start(self, trainer: Trainer) -> None:
        self.on_cuda = trainer.device.type == "cuda"
        if not self.on_cuda:
            # Kineto (torch's profiling library) prints marker lines and, in CUDA builds on machines without a
            # GPU, a misleading error to stderr; on CPU it has nothing to say that matters. With CUDA its
            # messages (CUPTI permissions) do matter: kept. A KINETO_LOG_LEVEL the user set is respected.
            os.environ.setdefault("KINETO_LOG_LEVEL", "6")
        self.folder = trainer.run_dir / DIR
        if getattr(trainer, "resumed", False) and any(self.folder.glob(TRACE + "*")):
            # resume= replays trainer.profile=true: the first run's trace stays, the resumed steps are not profiled
            log.info("trainer.profile: kept the profile the run wrote before it was resumed, in %s", self.folder)
            return
        activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if self.on_cuda else [])]
        prof = profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=self.steps, repeat=1),
                       on_trace_ready=self._write, record_shapes=True)
        try:
            prof.start()
        except Exception as e:
            log.warning("trainer.profile: the profiler could not start: %s", _first_line(e))
            return
        self.prof = prof

    def on_train_step(self, trainer: Trainer) -> None:
        if self.prof is None:  # done: the rest of the run pays only this check
            return
        self.seen += 1
        self.prof.step()  # after the last recorded step this calls `_write`
        if self.written:
            self._stop()

    def _write(self, prof: profile) -> None:
        """The trace and the table; called by the profiler, in the loop: a failure is a warning, never the run."""
        self.written = True
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            trace = export_trace(prof, self.folder)
            table = top_ops(prof, self.on_cuda)
            atomic_write_bytes(self.folder / TOP_OPS, lambda f: f.write(table.encode()))
        except Exception as e:
            log.warning("trainer.profile: could not write the profile into %s: %s", self.folder, _first_line(e))
            return
        steps = min(max(self.seen - 1, 0), self.steps)
        log.info("profile: %d training step(s)%s in %s (open it at https://ui.perfetto.dev or chrome://tracing); "
                 "top operators by self time in %s", steps, " and the end of the run" if self.ending else "", trace,
                 self.folder / TOP_OPS)

    def _stop(self) -> None:
        """Stop the profiler: after `_write`, to close its last step; before it, to write what it recorded."""
        prof, self.prof = self.prof, None
        if prof is not None:
            prof.stop()

    def _finish(self) -> None:
        """At the end of a run shorter than the profile: what was recorded is written; a warm-up alone is not."""
        if self.prof is None:
            return
        self.ending = True
        try:
            self._stop()
        except Exception as e:
            log.warning("trainer.profile: could not stop the profiler: %s", _first_line(e))
        if not self.written:
            log.warning("trainer.profile: the run ended after %d optimizer step(s), before the profiler recorded "
                        "one (the first is its warm-up); no profile written", self.seen)

    def on_fit_end(self, trainer: Trainer, result: dict[str, Any]) -> None:
        self._finish()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._finish()
