"""Gradient clipping that says what it did: the global gradient norm *before* clipping (the value
`clip_grad_norm_` returns) and how often clipping changed the gradients, per epoch, as `train/grad_norm_before_clip`
and `train/clip_fraction`.

Per optimizer step this adds three in-place sums on the device (no host sync; the buffers are allocated once, so
it is safe inside a captured CUDA graph); they are read once at the epoch's end. A step whose gradients are not
finite (skipped by the fp16 grad scaler) is not counted. Value clipping (`gradient_clip_algorithm=value`) fires
when any gradient value exceeds the limit: its largest absolute value is computed before clipping.
"""

from __future__ import annotations

import torch
from torch import nn


class Clipper:
    def __init__(self, max_value: float, by_norm: bool, device: torch.device) -> None:
        self.max_value, self.by_norm = max_value, by_norm
        self.sums = torch.zeros(3, device=device)  # [norms before clipping, steps clipped, steps counted]

    def clip(self, parameters: list[nn.Parameter]) -> None:
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        if self.by_norm:
            norm = nn.utils.clip_grad_norm_(parameters, self.max_value)
            largest = norm
        else:
            norm = nn.utils.get_total_norm(grads)
            largest = nn.utils.get_total_norm(grads, norm_type=float("inf"))
            nn.utils.clip_grad_value_(parameters, self.max_value)
        with torch.no_grad():
            norm, largest = norm.float().to(self.sums.device), largest.float().to(self.sums.device)
            finite = torch.isfinite(norm)
            self.sums[0] += torch.where(finite, norm, 0.0)
            self.sums[1] += (finite & (largest > self.max_value)).float()
            self.sums[2] += finite.float()

    def epoch_metrics(self) -> dict[str, float]:
        """The epoch's mean norm before clipping and share of clipped steps (one host sync), then reset."""
        total, clipped, steps = self.sums.tolist()
        self.sums.zero_()
        if not steps:
            return {}
        return {"grad_norm_before_clip": total / steps, "clip_fraction": clipped / steps}
