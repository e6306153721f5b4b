"""Run directories under `runs/`: fresh, never reused, and written so a crash leaves no torn file."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from trainctl.atomic import atomic_write_bytes


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


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))
