"""Device choice: `auto` takes the best accelerator present (cuda > mps > cpu); asking for an absent one fails."""

from __future__ import annotations

import torch

from trainctl.errors import UserError


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.insert(1 if "cuda" in found else 0, "mps")
    return found


def auto_device() -> str:
    return available_devices()[0]


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device(auto_device())
    if name not in available_devices():
        raise UserError(
            f"device={name} was asked for but no {name} device is available on this machine "
            f"(available: {', '.join(available_devices())}). Use device=auto or device=cpu."
        )
    return torch.device(name)


def describe_devices() -> list[str]:
    """Human-readable lines for `trainctl doctor`."""
    lines = ["cpu"]
    if torch.cuda.is_available():
        lines += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    if "mps" in available_devices():
        lines.append("mps (Apple GPU)")
    return lines
