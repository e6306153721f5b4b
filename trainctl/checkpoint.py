"""Checkpoints: plain dicts that load with `torch.load(path, weights_only=True)`, written atomically.

A checkpoint holds `model`, `optimizer`, `scheduler` state dicts, progress counters, RNG states and the resolved
config as plain containers, plus `format_version` so later trainctl versions can read or refuse old files.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import torch

from trainctl.atomic import atomic_write_bytes
from trainctl.errors import UserError

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """random.setstate wants tuples; a round trip through some loaders can give lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    # Serialised in memory first: a failing disk write then raises a plain OSError (ENOSPC, EFBIG) that
    # atomic_write_bytes reports, instead of an error from deep inside torch's zip writer.
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write_bytes(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; any problem is one UserError naming the file."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist. Check the path (runs/<run>/checkpoints/last.pt).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # garbage bytes make torch.load raise nearly anything (IndexError, KeyError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {path} is corrupt or not a trainctl checkpoint ({first}).") from None
    if not isinstance(state, dict) or "model" not in state or "format_version" not in state:
        raise UserError(f"checkpoint {path} is not a trainctl checkpoint (no model/format_version entries).")
    if state["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"checkpoint {path} has format {state['format_version']}, newer than this trainctl reads "
            f"({FORMAT_VERSION}): upgrade trainctl."
        )
    return state
