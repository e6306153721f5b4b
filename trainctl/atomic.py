"""Crash-safe file writes (no torch here: the CLI's light paths use it too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainctl import faults
from trainctl.errors import UserError


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through `write(file)` to a temp file beside `path`, fsync it, rename it over `path`, fsync the dir.

    A crash at any moment leaves either the old file or the new one, never a torn one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        faults.during_save()
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"could not write {path.name} in {path.parent}: {e.strerror or e}. "
                        "Free some space or choose another directory; the previous file is intact.") from None
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    faults.after_save()
