"""What a checkpoint's model expects of its inputs, and the training normalisation as a module.

Training keeps images as uint8 pixels and its eval transform scales them to [0, 1] and standardises them with
the dataset's mean and std (`trainctl.data.transforms`). `Preprocess` does the same arithmetic in the same order,
so `predict` gives the numbers `eval` gives, and `export preprocess=true` puts it inside the exported graph.
`fit_images` makes other images fit: grey to RGB or back, and a resize to the trained size; each change is
counted in `Adjustments` and said once, never silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from trainctl.data.splits import DataSpec

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's convert("L") weighs R, G and B


class Preprocess(nn.Module):
    """Raw images to the model's input: uint8 pixels are scaled to [0, 1] (floats are taken to be in [0, 1]
    already), then standardised with the training mean and std when the dataset normalised."""

    def __init__(self, mean: list[float], std: list[float], normalize: bool) -> None:
        super().__init__()
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The dtype is fixed when a graph is exported, so this branch is resolved once, not per call.
        x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
        return x.sub(self.mean).div(self.std) if self.normalize else x


@dataclass(frozen=True)
class InputRules:
    """The inputs a checkpoint's model takes: one sample's shape, and for images the training normalisation."""

    input_shape: tuple[int, ...]
    images: bool
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    normalize: bool = False

    @property
    def shape_text(self) -> str:
        return "x".join(map(str, self.input_shape))

    def preprocess(self) -> nn.Module:
        """The module that turns raw inputs into what the model saw in training (identity for non-images)."""
        return Preprocess(list(self.mean), list(self.std), self.normalize) if self.images else nn.Identity()

    def describe(self) -> dict[str, Any]:
        """The preprocessing in plain values, for an exported file's metadata."""
        if not self.images:
            return {"images": False, "input_shape": list(self.input_shape)}
        return {"images": True, "input_shape": list(self.input_shape), "scale": "uint8 pixels / 255",
                "normalize": self.normalize, "mean": list(self.mean), "std": list(self.std)}


class WithUserTransforms(nn.Module):
    """The training preprocessing followed by the run's `dataset.eval_transforms`, as evaluation applied them."""

    def __init__(self, preprocess: nn.Module, dataset_cfg: DictConfig) -> None:
        from trainctl.data.user_transforms import build_user_transforms

        super().__init__()
        self.preprocess = preprocess
        self.user = build_user_transforms(dataset_cfg.get("eval_transforms"), "eval_transforms")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        for fn in self.user:
            x = fn(x)
        return x


def input_rules(dataset_cfg: DictConfig, spec: DataSpec) -> InputRules:
    """The rules for a dataset config: image datasets (those with a mean and std) take pixels; the others
    (generated points, sequences) take float tensors of the dataset's shape as they are."""
    shape = tuple(int(d) for d in spec.input_shape)
    if len(shape) != 3 or "mean" not in dataset_cfg:
        return InputRules(shape, images=False)
    return InputRules(shape, True, tuple(float(m) for m in dataset_cfg.mean),
                      tuple(float(s) for s in dataset_cfg.std), bool(dataset_cfg.normalize))


@dataclass
class Adjustments:
    """The changes made to make inputs fit the model, counted so they are said once, at the end."""

    to_rgb: int = 0
    to_grey: int = 0
    channels_last: int = 0
    resized: Counter = field(default_factory=Counter)  # original (height, width) -> images

    def lines(self, rules: InputRules) -> list[str]:
        said = []
        if self.to_grey:
            said.append(f"converted {self.to_grey} colour image(s) to grey: the model was trained on grey images")
        if self.to_rgb:
            said.append(f"converted {self.to_rgb} grey image(s) to RGB: the model was trained on colour images")
        if self.channels_last:
            said.append(f"read {self.channels_last} image(s) stored as [H, W, C] (channels last)")
        if self.resized:
            sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in self.resized.most_common(3))
            more = ", ..." if len(self.resized) > 3 else ""
            height, width = rules.input_shape[1:]
            said.append(f"resized {sum(self.resized.values())} image(s) to {height}x{width}, the size the model "
                        f"was trained on (from {sizes}{more})")
        return said


def fit_images(x: torch.Tensor, rules: InputRules, adjustments: Adjustments) -> torch.Tensor:
    """A batch of images [N, C, H, W] (uint8, or float in [0, 1]) with the model's channels and size. Only a
    batch that needs a change is converted (to float in [0, 1]); the others stay as they are."""
    channels, height, width = rules.input_shape
    if x.shape[1] != channels:
        x = _as_float(x)
        if channels == 3:
            x = x.expand(-1, 3, -1, -1)
            adjustments.to_rgb += x.shape[0]
        else:
            weights = torch.tensor(GREY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * weights).sum(1, keepdim=True)
            adjustments.to_grey += x.shape[0]
    if tuple(x.shape[2:]) != (height, width):
        adjustments.resized[tuple(x.shape[2:])] += x.shape[0]
        x = F.interpolate(_as_float(x), size=(height, width), mode="bilinear", antialias=True,
                          align_corners=False).clamp_(0.0, 1.0)
    return x


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
