"""Files a run leaves behind: fresh run directories and crash-safe writes (no torch here: light CLI paths use it)."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable

from trainctl.errors import UserError


def token() -> str:
    """Random tail of run-directory names: two runs started in the same second still get different names."""
    return secrets.token_hex(3)


RUN_NAME = r"(?:(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63})?"  # a file name: no slash, no `..`, no leading dot
RUN_NAME_HELP = ("a run name is up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, "
                 "without '..' (e.g. name=baseline)")


def run_dir_name(base: str, stamp: str, name: str | None, default: str) -> str:
    """Where a new run writes: `<base>/<stamp>_<name>` when the user named it (`name=baseline`), with a random
    tail only when that directory exists already; else `<base>/<stamp>_<default>_<random>`. The one place run
    directories are named (the `trainctl_run_dir` resolver of conf/train.yaml)."""
    if not name:
        return f"{base}/{stamp}_{default}_{token()}"
    if not re.fullmatch(RUN_NAME, name):  # validation refuses it first; never a path, whatever calls this
        raise ValueError(f"name={name!r}: {RUN_NAME_HELP}")
    path = f"{base}/{stamp}_{name}"
    return f"{path}_{token()}" if os.path.lexists(path) else path


def create_run_dir(base: Path = Path("runs"), hint: str = "run") -> Path:
    """A new directory `<base>/<timestamp>_<hint>_<token>` (used when `train()` is called without Hydra)."""
    for _ in range(100):
        path = base / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{hint}_{token()}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run directory under {base}")


LOCK_FILE = ".lock"  # in every run directory: held (flock) by the one process that writes the run
RUN_FILES = (".hydra", "checkpoints", "metrics.json", "train.log")  # any of these: the directory holds a run
_held: dict[Path, int] = {}  # run directory -> the open lock file this process holds
_unused: set[Path] = set()  # of those, lock files this process created for a run that has written nothing yet


def holds_run(run_dir: Path) -> bool:
    """Whether `run_dir` already holds (part of) a run."""
    return run_dir.is_dir() and any((run_dir / name).exists() for name in RUN_FILES)


def lock_run_dir(run_dir: Path) -> bool:
    """Take the run directory's lock for the rest of this process (or until `unlock_run_dir`): True when this
    call took it, False when this process held it already. Another live holder: UserError naming its pid.

    `flock` belongs to the open file, so the kernel drops it when the holder dies, however it dies (kill -9
    included): a lock file left behind never blocks. The file is opened close-on-exec, so a program the run
    starts does not keep the lock alive after it. Taking the lock writes nothing (a resume of a finished run
    changes no byte); `note_writer` records the pid once the run writes.
    """
    key = run_dir.resolve()
    if key in _held:
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    created = not (key / LOCK_FILE).exists()
    lock = key / LOCK_FILE
    if lock.is_symlink() or (lock.exists() and not lock.is_file()):  # a folder or fifo there: never opened
        raise UserError(f"{lock} is not a regular file: trainctl keeps a run's lock there, and this one was made "
                        "by someone else. Remove it if no trainctl process uses this run directory.")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(fd)
        os.close(fd)
        raise _busy(run_dir, holder) from None
    if not _held:
        atexit.register(release_run_dirs)
    _held[key] = fd
    if created:
        _unused.add(key)
    return True


def note_writer(run_dir: Path) -> None:
    """Record this process's pid in the lock it holds: what another process names when the kernel cannot say."""
    _unused.discard(run_dir.resolve())
    fd = _held.get(run_dir.resolve())
    mine = f"{os.getpid()}\n".encode()
    if fd is not None and os.pread(fd, 32, 0) != mine:
        os.ftruncate(fd, 0)
        os.pwrite(fd, mine, 0)


def _holder(fd: int) -> str:
    """The pid holding the lock on `fd`'s file: from the kernel's lock table (Linux), else the pid its writer
    recorded."""
    inode = os.fstat(fd).st_ino
    try:
        with open("/proc/locks") as table:
            for line in table:
                fields = line.split()
                if "FLOCK" in fields and len(fields) > 5 and fields[5].endswith(f":{inode}"):
                    return fields[4]
    except OSError:
        pass
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"


def _busy(run_dir: Path, holder: str) -> UserError:
    return UserError(f"{run_dir} is being written by another trainctl process (pid {holder}): one process writes "
                     "a run directory at a time. Wait for that run to end (or stop it), then continue it with "
                     f"resume={run_dir}; to train anew, choose another directory.")


def check_not_locked(run_dir: Path) -> None:
    """Refuse a run directory another live process holds, without taking it (`resume=` asks before reading)."""
    if run_dir.resolve() in _held or not (run_dir / LOCK_FILE).is_file():
        return
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # unreadable: taking the lock later says what is wrong
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        raise _busy(run_dir, _holder(fd)) from None
    finally:
        os.close(fd)


def unlock_run_dir(run_dir: Path) -> None:
    """Release the lock (closing the file releases the flock). A lock file this process created for a command
    that then wrote nothing (it failed its checks, or resumed a finished run) goes too: nothing left behind."""
    key = run_dir.resolve()
    fd = _held.pop(key, None)
    if fd is None:
        return
    if key in _unused:
        _unused.discard(key)
        with contextlib.suppress(OSError):
            (key / LOCK_FILE).unlink()  # before the close: while locked, no other process holds this file
    os.close(fd)


def release_run_dirs() -> None:
    """Release every run directory this process holds: when its command ends (and at exit, for a command that
    never returned)."""
    for key in list(_held):
        unlock_run_dir(key)


def atomic_write_bytes(path: Path, write: Callable[[Any], Any],
                       before_replace: Callable[[], None] | None = None) -> None:
    """Write through `write(file)` to a temp file beside `path`, fsync it, rename it over `path`, fsync the dir.

    A crash at any moment leaves either the old file or the new one, never a torn one. `before_replace` runs
    between the fsync and the rename (tests kill the process there).
    """
    if path.exists() and not path.is_file():  # a directory, or a device such as /dev/full: never replaced
        raise UserError(f"cannot write {path}: it exists and is not a regular file. Give a file path "
                        "(out=results/metrics.json) in a writable directory.")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # the folder may not exist, or be a file (out=notes.txt/x.json)
            tmp.unlink(missing_ok=True)
        raise UserError(f"could not write {path}: {e.strerror or e}. Choose a directory that exists, is writable "
                        "and has free space; any previous file there is intact.") from None
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))
