"""The one field helper every schema uses: defaults, help text and range limits in one place."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from omegaconf import MISSING


def spec(default: Any = MISSING, *, help: str = "", **limits: Any) -> Any:
    """A dataclass field with a help text and range limits (ge, gt, le, lt, choices) for the validator."""
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help, **limits})
    return field(default=default, metadata={"help": help, **limits})
