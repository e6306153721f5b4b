"""`deny(path)`: make a file or folder unreadable, as `chmod 000` does for anyone but root.

Root ignores permissions, and tests often run as root (containers, CI), so there the fixture also makes the os
calls fail the way they fail for a normal user: listing the folder, or reaching (stat, open) anything inside it,
raises PermissionError; a denied file cannot be opened. The chmod happens in both cases, so the same test runs
for real as a normal user.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Callable

import pytest


def _path_of(target: object) -> Path | None:
    if isinstance(target, int):  # an open file descriptor: already past the permission check
        return None
    try:
        return Path(os.path.abspath(os.fsdecode(target)))
    except TypeError:
        return None


def install(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], Path]:
    denied: list[Path] = []

    def blocked(target: object, *, listing: bool = False, opening: bool = False) -> bool:
        path = _path_of(target)
        if path is None:
            return False
        for d in denied:
            if d in path.parents or (path == d and (listing or opening)):
                return True
        return False

    def guard(function: Callable, **kind: bool) -> Callable:
        def guarded(target: object = ".", *args: object, **kwargs: object) -> object:
            if blocked(target, **kind):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(target))
            return function(target, *args, **kwargs)
        return guarded

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "stat", guard(os.stat))
        monkeypatch.setattr(os, "lstat", guard(os.lstat))
        monkeypatch.setattr(os, "listdir", guard(os.listdir, listing=True))
        monkeypatch.setattr(os, "scandir", guard(os.scandir, listing=True))
        monkeypatch.setattr(builtins, "open", guard(builtins.open, opening=True))
        monkeypatch.setattr(io, "open", guard(io.open, opening=True))

    def deny(path: Path) -> Path:
        denied.append(Path(os.path.abspath(path)))
        path.chmod(0)
        return path

    return deny


@pytest.fixture
def deny(monkeypatch: pytest.MonkeyPatch):
    """`deny(path)` makes path unreadable for the rest of the test; permissions come back afterwards."""
    make_unreadable, paths = install(monkeypatch), []

    def _deny(path: Path) -> Path:
        paths.append(path)
        return make_unreadable(path)

    yield _deny
    for path in paths:
        if path.exists():
            path.chmod(0o755)
