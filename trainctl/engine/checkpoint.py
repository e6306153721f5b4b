"""Checkpoints: plain dicts that load with `torch.load(path, weights_only=True)`, written atomically.

A checkpoint holds `model`, `optimizer`, `scheduler` state dicts, progress counters, RNG states and the resolved
config as plain containers, plus `format_version` so later trainctl versions can read or refuse old files.
What goes in one is `trainctl.engine.capture`'s; when the policy saves (every epoch, on improvement, mid-epoch,
on a signal) is the checkpoint callback's job.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, Callable

import torch

from trainctl.components.naming import upgrade_state_dict
from trainctl.errors import UserError
from trainctl.files import atomic_write_bytes

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_initialized():  # a run on CUDA; a CPU run on a GPU machine starts no CUDA context for this
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


def on_cpu(value: Any) -> Any:
    """`value` with every tensor in host memory: a checkpoint written on a GPU loads anywhere (and its RNG
    states must be CPU tensors for torch.set_rng_state)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(on_cpu(v) for v in value)
    return value


def save_checkpoint(path: Path, state: dict[str, Any], before_replace: Callable[[], None] | None = None) -> None:
    # Serialised in memory first: a failing disk write then raises a plain OSError (ENOSPC, EFBIG) that
    # atomic_write_bytes reports, instead of an error from deep inside torch's zip writer.
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write_bytes(path, lambda f: f.write(buffer.getbuffer()), before_replace)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; any problem is one UserError naming the file."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist. Check the path: a run keeps runs/<run>/checkpoints/"
                        "best.pt (the best epoch) and last.pt (the latest, what resume= continues).")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # garbage bytes make torch.load raise nearly anything (IndexError, KeyError, ...)
        raise UserError(f"checkpoint {path} is corrupt or not a trainctl checkpoint ({_load_failure(e)}).") from None
    if not isinstance(state, dict) or "model" not in state or "format_version" not in state:
        raise UserError(f"checkpoint {path} is not a trainctl checkpoint (no model/format_version entries).")
    check_entries(state, path)
    if state["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"checkpoint {path} has format {state['format_version']}, newer than this trainctl reads "
            f"({FORMAT_VERSION}): upgrade trainctl."
        )
    return state


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What each entry trainctl writes holds, checked once on load: a file made or edited elsewhere (a `format_version`
# that is a string, `model` as a list) is one message here, not a TypeError wherever the entry is first used.
ENTRY_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "format_version": ("a whole number", _is_int),
    "model": ("a dict of tensors (a state dict)",
              lambda v: isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values())),
    "optimizer": ("a dict (a state dict)", lambda v: isinstance(v, dict)),
    "scheduler": ("a dict (a state dict)", lambda v: isinstance(v, dict)),
    "ema": ("a dict or null", lambda v: v is None or isinstance(v, dict)),
    "scaler": ("a dict or null", lambda v: v is None or isinstance(v, dict)),
    "rng": ("a dict", lambda v: isinstance(v, dict)),
    "config": ("a dict", lambda v: isinstance(v, dict)),
    "epoch": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "step": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "batches_in_epoch": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "best_epoch": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "history": ("a list of dicts", lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v)),
    "throughputs": ("a list", lambda v: isinstance(v, list)),
}


def check_entries(state: dict[str, Any], path: Path) -> None:
    """Each entry trainctl knows holds what trainctl writes there."""
    for name, (kind, fits) in ENTRY_KINDS.items():
        if name in state and not fits(state[name]):
            shown = repr(state[name]) if not isinstance(state[name], (dict, list)) else type(state[name]).__name__
            raise UserError(f"checkpoint {path} is not a trainctl checkpoint: its '{name}' entry is {shown[:60]}, "
                            f"where trainctl writes {kind}. Use a checkpoint that trainctl wrote "
                            "(runs/<run>/checkpoints/last.pt or best.pt).")


RESUMED_ENTRIES = ("config", "model", "optimizer", "scheduler", "rng")  # what `restore` and resume read


def check_resumable(state: dict[str, Any], path: Path) -> None:
    """A loaded checkpoint must hold a whole training state to be resumed: weights alone (a `torch.save` of a
    model's state dict wrapped by hand, an exported file) do not say how the run was configured."""
    missing = [name for name in RESUMED_ENTRIES if name not in state]
    if "config" not in missing and not isinstance(state["config"], dict):
        missing.append("config")  # present but not a config: as good as absent
    if missing:
        raise UserError(
            f"checkpoint {path} cannot be resumed: it has no {', '.join(repr(m) for m in missing)} "
            f"entr{'y' if len(missing) == 1 else 'ies'}, so it holds no run's training state (trainctl train "
            "writes it to runs/<run>/checkpoints/last.pt). Resume from such a run directory, or start a new run."
        )


def _load_failure(error: Exception) -> str:
    """The line of torch.load's error that says what is wrong with the file. For files the safe unpickler
    refuses, torch's first line advises `weights_only=False`, which would let the file run code: skip it and its
    boilerplate for the unpickler's own finding."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if lines[0].startswith("Weights only load failed"):
        found = [line for line in lines[1:] if not line.startswith(("Please file an issue", "Check the documentation"))]
        return found[0] if found else "the safe loader refused it"
    return lines[0]


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


def checkpoint_file(value: str, default: str = "best") -> Path:
    """A checkpoint named by the user: a `.pt` file, or a run directory (its `checkpoints/<default>.pt`)."""
    path = Path(value).expanduser()
    if path.is_dir():
        inside = path / "checkpoints" / f"{default}.pt"
        if not inside.is_file():
            raise UserError(f"{value} is a directory without checkpoints/{default}.pt: give a run directory "
                            "(runs/<run>) or a .pt file from its checkpoints/ folder.")
        return inside
    return path


def load_weights(model: torch.nn.Module, weights: dict[str, Any], source: Path) -> None:
    """Load a state dict (an older checkpoint's index names read as the layer names, by position), turning a
    shape or name mismatch into one message that lists what differs."""
    try:
        model.load_state_dict(upgrade_state_dict(model, weights))
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines()[1:] if line.strip()][:6]
        raise UserError(f"the weights in {source} do not fit the model built from its config: "
                        + " ".join(lines) + " Build the model with the checkpoint's own settings "
                        "(drop the model overrides).") from None
