"""`trainctl ARGS` run inside the test process, as a subprocess would see it: the cheap way to run the real CLI.

A CLI process costs seconds of imports (torch, torchvision, Hydra); most tests check what a command prints,
writes and returns, which does not need a fresh process. `run_in_process` calls `trainctl.cli.main` with what a
process would have (its own working directory, environment, argv, stdout and stderr, default warnings) and puts
back afterwards everything a run changes in the interpreter (logging handlers, Hydra's singletons, signal
handlers, random states, torch's flags, modules imported from the test's files), so the next run starts clean.

What a process adds, a test that needs it gets with `run_cli(..., subprocess=True)` (conftest): signals and
kill -9 (TRAINCTL_FAULTS), several processes (torchrun, joblib), plugins on PYTHONPATH, a hard timeout."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
# Where a module may come from and still be kept after a run: the interpreter, the installed packages, the repo.
KEPT_ROOTS = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, REPO}) + tuple(
    str(Path(p).resolve()) for p in sys.path if p and "site-packages" in p)
DEFAULT_WARNINGS = list(warnings.filters)  # the interpreter's, before pytest records warnings per test
SHOW_WARNING = warnings._showwarnmsg_impl  # type: ignore[attr-defined]  (pytest swaps it while recording)
SIGNALS = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                       signal.SIGXFSZ, signal.SIGALRM)]
ENTRY = importlib.util.find_spec("trainctl.__main__").origin or "trainctl"  # sys.argv[0] of `python -m trainctl`
RESET_LOGGERS = ("trainctl", "hydra", "__main__")  # configured per run by Hydra or trainctl, not by an import
_last_start: dict[str, int] = {}  # working directory -> the second its last run started (run names hold it)


class NeedsProcess(BaseException):
    """The command would start processes of its own (torchrun): it is run again as a real process. A
    BaseException, so that no `except Exception` on the way (Hydra's, trainctl's) turns it into an error."""


class _Capture(io.TextIOBase):
    """sys.stdout / sys.stderr while a run is in flight. What binds the stream itself at creation (a logging
    StreamHandler, optuna's handler) keeps writing to the current run's buffer, or to the real stream between runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.target: io.TextIOWrapper | None = None

    def _out(self) -> Any:
        if self.target is not None:
            return self.target
        return getattr(sys, f"__{self.name}__") or io.StringIO()

    def write(self, text: str) -> int:
        return self._out().write(text)

    def writelines(self, lines: Any) -> None:
        self._out().writelines(lines)

    def flush(self) -> None:
        self._out().flush()

    def isatty(self) -> bool:  # a pipe, as for the subprocess
        return False

    def fileno(self) -> int:
        raise io.UnsupportedOperation("captured stream")

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"

    @property
    def errors(self) -> str:
        return "strict"

    @property
    def buffer(self) -> Any:
        return self._out().buffer


STDOUT, STDERR = _Capture("stdout"), _Capture("stderr")


def _text(wrapper: io.TextIOWrapper) -> str:
    """What `subprocess.run(text=True)` would return: universal newlines."""
    wrapper.flush()
    raw = wrapper.buffer.getvalue().decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    return raw.replace("\r\n", "\n").replace("\r", "\n")


@contextlib.contextmanager
def _environment(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    saved_env, saved_cwd, saved_argv, saved_path = dict(os.environ), os.getcwd(), sys.argv[:], sys.path[:]
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path


@contextlib.contextmanager
def _streams() -> Iterator[tuple[io.TextIOWrapper, io.TextIOWrapper]]:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    saved = sys.stdout, sys.stderr
    STDOUT.target, STDERR.target = out, err
    sys.stdout, sys.stderr = STDOUT, STDERR  # type: ignore[assignment]
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved
        STDOUT.target = STDERR.target = None


@contextlib.contextmanager
def _consoles() -> Iterator[None]:
    """rich consoles read the width (COLUMNS) and colour support once, when made: those that outlive a run are
    made again for it, under its environment and streams."""
    import rich
    from rich.console import Console

    from trainctl import terminal

    saved_global, saved_state = rich._console, dict(terminal.console.__dict__)
    rich._console = None  # rich.get_console() (RichHandler's default) makes a new one
    terminal.console.__dict__.update(Console(stderr=False, emoji=False).__dict__)
    try:
        yield
    finally:
        rich._console = saved_global
        terminal.console.__dict__.clear()
        terminal.console.__dict__.update(saved_state)


def _logger_state(logger: logging.Logger) -> tuple[Any, ...]:
    return logger.handlers[:], logger.level, logger.propagate, logger.disabled, getattr(logger, "filters", [])[:]


@contextlib.contextmanager
def _logging() -> Iterator[None]:
    """Hydra's job logging (a dictConfig) and trainctl's handlers are per process: put the loggers back as they
    were, and close the handlers a run opened (train.log)."""
    manager = logging.Logger.manager
    saved = {name: _logger_state(lg) for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    saved_root, disabled = _logger_state(logging.root), logging.root.manager.disable
    before = {id(h) for state in [saved_root, *saved.values()] for h in state[0]}
    logging.root.handlers[:] = []  # a process starts with none (pytest's are here): warnings reach stderr through
    logging.root.setLevel(logging.WARNING)  # logging's last resort, as they would
    try:
        yield
    finally:
        opened: list[logging.Handler] = []
        loggers = [(name, lg) for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)]
        for name, logger in [("", logging.root), *loggers]:
            state = saved_root if name == "" else saved.get(name)
            if state is None and not name.startswith(RESET_LOGGERS):
                continue  # a library's logger made on import (optuna's): configured once, as in a process
            opened += [h for h in logger.handlers if id(h) not in before]
            handlers, level, propagate, off, filters = state or ([], logging.NOTSET, True, False, [])
            logger.handlers[:], logger.propagate, logger.disabled, logger.filters[:] = handlers, propagate, off, filters
            logger.setLevel(level)
        logging.disable(disabled)
        for handler in opened:
            with contextlib.suppress(Exception):
                handler.close()


@contextlib.contextmanager
def _warnings() -> Iterator[None]:
    """Warnings as a process shows them: printed to stderr under the default filters, each time."""
    with warnings.catch_warnings():
        warnings.filters[:] = DEFAULT_WARNINGS
        warnings._filters_mutated()  # type: ignore[attr-defined]  (forget what was already shown once)
        recorder = warnings._showwarnmsg_impl  # type: ignore[attr-defined]
        warnings._showwarnmsg_impl = SHOW_WARNING  # type: ignore[attr-defined]
        try:
            yield
        finally:
            warnings._showwarnmsg_impl = recorder  # type: ignore[attr-defined]


@contextlib.contextmanager
def _interpreter() -> Iterator[None]:
    """Signal handlers, random states, torch's global flags and threads, and modules: what a run may change."""
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    rng = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    flags = (torch.get_num_threads(), torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, torch.get_float32_matmul_precision())
    modules = set(sys.modules)
    importlib.invalidate_caches()  # files a test just wrote (a user's module) are seen
    try:
        yield
    finally:
        for s, handler in handlers.items():
            if handler is not None:
                signal.signal(s, handler)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        torch.set_num_threads(flags[0])
        torch.set_default_dtype(flags[1])
        torch.use_deterministic_algorithms(flags[2], warn_only=flags[3])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags[4], flags[5]
        torch.set_float32_matmul_precision(flags[6])
        for name in set(sys.modules) - modules:  # a user's module from a test's folder: the next test may differ
            file = getattr(sys.modules[name], "__file__", None)
            if file and not str(Path(file).resolve()).startswith(KEPT_ROOTS):
                del sys.modules[name]
        if "torch._dynamo" in sys.modules:
            torch._dynamo.reset()  # compiled code and its recompile counts are per process


def _reset_trainctl() -> None:
    """Hydra's singletons and trainctl's per-process caches, as a new process has them."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # type: ignore[assignment]
    for module, attr, value in (("trainctl.commands.train", "_sweep_dir", None),
                                ("trainctl.commands.train", "_user_args", [])):
        if module in sys.modules:
            setattr(sys.modules[module], attr, value)
    if "trainctl.data.idx" in sys.modules:
        sys.modules["trainctl.data.idx"]._cache.clear()
    if "trainctl.sweep.trial_link" in sys.modules:
        sys.modules["trainctl.sweep.trial_link"]._in_process.clear()


@contextlib.contextmanager
def _launch_refused() -> Iterator[None]:
    """trainer.devices=N starts torchrun, whose processes write to the real file descriptors: not capturable
    here, so such a command is handed back to be run as a process (its checks before launching wrote nothing)."""
    from trainctl.commands import launch

    def refuse(args: list[str], n: int) -> int:
        raise NeedsProcess(f"{n} processes")

    saved = launch.launch
    launch.launch = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        launch.launch = saved  # type: ignore[assignment]


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """subprocess.run's timeout, for code that returns to Python now and then (a hang inside one C call
    cannot be interrupted here: tests that guard against one run a process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise subprocess.TimeoutExpired(["trainctl"], seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _entries(cwd: Path) -> set[str]:
    runs = cwd / "runs"
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


@contextlib.contextmanager
def _distinct_second(cwd: Path) -> Iterator[None]:
    """Run directories are named by the second a run starts and listed in name order (`run_dirs`): a process
    takes seconds to start, so two runs in one folder never share a second; neither do they here."""
    key = str(cwd.resolve())
    while int(time.time()) == _last_start.get(key):
        time.sleep(0.02)
    started, before = int(time.time()), _entries(cwd)
    try:
        yield
    finally:
        if _entries(cwd) - before:
            _last_start[key] = started


def run_in_process(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`python -m trainctl ARGS` in `cwd` with `env` applied, run in this process. Raises NeedsProcess when the
    command would start processes itself."""
    from trainctl.cli import main

    code: int | str | None = 0
    needs_process = False
    with contextlib.ExitStack() as stack:
        stack.enter_context(_distinct_second(cwd))
        stack.enter_context(_environment(cwd, env))
        stack.enter_context(_interpreter())
        stack.enter_context(_logging())
        out, err = stack.enter_context(_streams())
        stack.enter_context(_warnings())
        stack.enter_context(_consoles())
        stack.enter_context(_launch_refused())
        stack.callback(_reset_trainctl)
        sys.argv[:] = [ENTRY, *args]
        try:
            with _time_limit(timeout):
                code = main(args)
        except NeedsProcess:
            needs_process = True
        except SystemExit as stop:
            code = stop.code
        except subprocess.TimeoutExpired:
            raise
        except BaseException:  # an uncaught error: the interpreter prints its traceback and exits 1
            traceback.print_exc(file=sys.stderr)
            code = 1
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = _text(out), _text(err)
    if needs_process:
        raise NeedsProcess(" ".join(args))
    return subprocess.CompletedProcess([sys.executable, "-m", "trainctl", *args], code, stdout, stderr)
