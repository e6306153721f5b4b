"""Checkpoints: plain dicts that load with `torch.load(path, weights_only=True)`, written atomically.

A checkpoint holds `model`, `optimizer`, `scheduler` state dicts, progress counters, RNG states and the resolved
config as plain containers, plus `format_version` so later trainctl versions can read or refuse old files.
`capture` is the one place that writes a run's training state and `restore` the one place that reads it back;
when the policy saves (every epoch, on improvement, mid-epoch, on a signal) is the checkpoint callback's job.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from omegaconf import OmegaConf

from trainctl.errors import UserError
from trainctl.files import atomic_write_bytes

if TYPE_CHECKING:
    from trainctl.engine.step import Trainer

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


def capture(t: Trainer) -> dict[str, Any]:
    """Everything needed to continue the run exactly where it stands."""
    return {
        "model": t.raw_model.state_dict(), "optimizer": t.optimizer.state_dict(), "scheduler": t.schedule.state_dict(),
        "ema": t.ema.state_dict() if t.ema is not None else None,
        "scaler": t.scaler.state_dict() if t.scaler is not None else None,
        **t.state.checkpointed(),
        "rng": rng_state(), "config": OmegaConf.to_container(t.cfg, resolve=True),
    }


def restore(t: Trainer, state: dict[str, Any]) -> None:
    """Put a captured state back into a freshly built trainer (the inverse of `capture`)."""
    t.raw_model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    t.schedule.load_state_dict(state["scheduler"])
    if t.ema is not None and state.get("ema") is not None:
        t.ema.load_state_dict(state["ema"])
    if t.scaler is not None and state.get("scaler"):
        t.scaler.load_state_dict(state["scaler"])
    t.state.restore(state)
    restore_rng_state(state["rng"])


def save_checkpoint(path: Path, state: dict[str, Any], before_replace: Callable[[], None] | None = None) -> None:
    # Serialised in memory first: a failing disk write then raises a plain OSError (ENOSPC, EFBIG) that
    # atomic_write_bytes reports, instead of an error from deep inside torch's zip writer.
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write_bytes(path, lambda f: f.write(buffer.getbuffer()), before_replace)


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


class CheckpointFiles:
    """The run's `checkpoints/` folder: `last.pt` and `best.pt`, written atomically.

    `before_replace` runs inside each save between writing the temp file and renaming it (fault-injection tests
    kill the process there to prove the previous file survives)."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / "checkpoints"
        self.before_replace: Callable[[], None] | None = None

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.pt"

    def save(self, name: str, state: dict[str, Any]) -> Path:
        path = self.path(name)
        save_checkpoint(path, state, self.before_replace)
        return path

    def load(self, name: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.path(name), map_location)

    def remove_stale_temps(self) -> None:
        """Temp files of a save that a kill cut short; the real files beside them are intact."""
        for stale in self.folder.glob(".*.tmp-*"):
            stale.unlink(missing_ok=True)
