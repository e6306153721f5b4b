"""Schema of the `device` group."""

from __future__ import annotations

from dataclasses import dataclass

from trainctl.config.schemas.fields import spec


@dataclass
class DeviceConfig:
    name: str = spec("auto", help="auto picks cuda > mps > cpu", choices=["auto", "cpu", "cuda", "mps"])
