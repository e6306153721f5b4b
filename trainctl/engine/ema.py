"""An exponential moving average of the weights, evaluated in place of the raw weights when enabled."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._ema = [p for p in self.model.parameters()]
        self._raw = [p for p in model.parameters()]
        self._ema_buffers = list(self.model.buffers())
        self._raw_buffers = list(model.buffers())

    @torch.no_grad()
    def update(self) -> None:
        """ema ← ema + (1 - decay) · (raw - ema), for all parameters in one fused call; buffers are copied."""
        torch._foreach_lerp_(self._ema, self._raw, 1.0 - self.decay)
        for ema_buffer, raw_buffer in zip(self._ema_buffers, self._raw_buffers):
            ema_buffer.copy_(raw_buffer)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
