"""The decision regions of a classifier of two features (the Gaussian toy set `blobs`): the plane coloured by
the class the model predicts at each point, with the samples drawn over it in their true class's colour.
Drawn for TensorBoard (`visuals/decision_regions`) and by `trainctl explain method=regions`."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

GRID = 200  # points per axis: 40,000 predictions, one or two batches
MAX_POINTS = 2000  # samples drawn over the regions
MARGIN = 0.1  # of each axis's range, around the samples


def has_two_features(input_shape: Sequence[int], task: str) -> bool:
    return tuple(input_shape) == (2,) and task == "classification"


@torch.inference_mode()
def predicted_grid(model: nn.Module, x: torch.Tensor, batch_size: int = 1 << 15
                   ) -> tuple[torch.Tensor, tuple[float, float, float, float]]:
    """[GRID, GRID] predicted classes over the samples' range (rows: the second feature), and that range."""
    low, high = x.min(0).values.float(), x.max(0).values.float()
    pad = (high - low).clamp_min(1e-6) * MARGIN
    low, high = low - pad, high + pad
    axes = [torch.linspace(float(low[i]), float(high[i]), GRID, device=x.device) for i in range(2)]
    second, first = torch.meshgrid(axes[1], axes[0], indexing="ij")
    points = torch.stack([first.flatten(), second.flatten()], 1)
    model.eval()
    classes = torch.cat([model(points[i:i + batch_size]).argmax(1) for i in range(0, len(points), batch_size)])
    return classes.view(GRID, GRID).cpu(), (float(low[0]), float(high[0]), float(low[1]), float(high[1]))


def regions_figure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str], title: str) -> Any:
    """The figure: predicted regions, and up to MAX_POINTS samples `x` [N, 2] (as the model takes them) with
    labels `y`."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    grid, extent = predicted_grid(model, x)
    colours = colormaps["tab10"].colors[: max(len(names), 1)] if len(names) <= 10 else colormaps["tab20"].colors
    cmap = ListedColormap(colours[: len(names)])
    figure = Figure(figsize=(6, 5.5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    ax.imshow(grid.numpy(), origin="lower", extent=extent, aspect="auto", cmap=cmap, alpha=0.35,
              vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest")
    shown = slice(0, MAX_POINTS)
    points, labels = x[shown].float().cpu().numpy(), y[shown].cpu().numpy()
    for c, name in enumerate(names):
        chosen = labels == c
        if chosen.any():
            ax.scatter(points[chosen, 0], points[chosen, 1], s=10, color=colours[c], edgecolors="black",
                       linewidths=0.3, label=str(name))
    ax.set_xlabel("feature 0")
    ax.set_ylabel("feature 1")
    ax.legend(loc="best", fontsize=8, title="true class")
    ax.set_title(title, fontsize=10)
    return figure
