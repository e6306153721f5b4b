"""Files a run leaves behind: fresh run directories and crash-safe writes (no torch here: light CLI paths use it)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable

from trainctl.errors import UserError


def token() -> str:
    """Random tail of run-directory names: two runs started in the same second still get different names."""
    return secrets.token_hex(3)


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
