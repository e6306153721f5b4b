"""Schema of the `device` group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from trainctl.config.schemas.fields import spec


@dataclass
class DeviceConfig:
    name: str = spec("auto", help="auto picks cuda > mps > cpu", choices=["auto", "cpu", "cuda", "mps"])
    index: Optional[int] = spec(None, help="which GPU: device=cuda:1 is device=cuda device.index=1; null is the "
                                           "first (cuda:0)", ge=0)
