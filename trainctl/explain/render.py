"""The pictures: grids drawn with matplotlib's Agg canvas (no pyplot, so no display and no global figure state),
returned as PNG bytes for the file and as an RGB array for TensorBoard."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

DPI = 100
PANEL = 1.5  # inches per image panel of a heatmap grid
SMALL_PANEL = 1.0  # inches per panel of feature-map and kernel grids
CAPTION = 0.5  # inches under the title row of panels for captions
HEADER = 0.6  # inches for the figure's title
SAMPLES_PER_ROW = 4  # heatmap grid: 4 samples, each as image + overlay
CHANNELS_PER_ROW = 16  # feature maps per row of a sample's block
MAX_CHANNELS = 64  # feature maps per image at most: four rows of 16 stay readable
KERNELS_PER_ROW = 8
KERNELS_SHOWN = 64


@dataclass
class Caption:
    """What is written on a sample: its true class, the predicted one and the model's probability for it."""

    true: str
    predicted: str
    probability: float

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


@dataclass
class Picture:
    png: bytes
    rgb: np.ndarray  # [H, W, 3] uint8, the same pixels as the PNG


def heatmap_inches(n: int) -> tuple[float, float]:
    """(width, height) of a heatmap grid of `n` samples."""
    columns, rows = min(n, SAMPLES_PER_ROW), math.ceil(n / SAMPLES_PER_ROW)
    return columns * 2 * PANEL, rows * (PANEL + CAPTION) + HEADER


def heatmap_grid(pixels: torch.Tensor, heatmaps: torch.Tensor, captions: list[Caption], title: str) -> Picture:
    """Per sample the image and the image under its heatmap (jet, half transparent), captioned."""
    n = len(captions)
    columns, rows = min(n, SAMPLES_PER_ROW), math.ceil(n / SAMPLES_PER_ROW)
    fig, axes = _figure(heatmap_inches(n), rows, 2 * columns, title, CAPTION / (PANEL + CAPTION))
    for i, caption in enumerate(captions):
        image_ax, overlay_ax = axes[i // columns][2 * (i % columns)], axes[i // columns][2 * (i % columns) + 1]
        _show_image(image_ax, pixels[i])
        image_ax.set_title(f"true: {caption.true}", fontsize=8)
        _show_image(overlay_ax, pixels[i])
        overlay_ax.imshow(heatmaps[i].numpy(), cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
        if float(heatmaps[i].max()) == 0.0:  # say so, rather than leave a blank overlay to be misread
            overlay_ax.text(0.5, 0.5, "empty map", transform=overlay_ax.transAxes, ha="center", va="center",
                            fontsize=8, color="white")
        overlay_ax.set_title(f"pred: {caption.predicted} {caption.probability:.0%}", fontsize=8,
                             color="tab:green" if caption.correct else "tab:red")
    return _rendered(fig)


def feature_grid(pixels: torch.Tensor, maps: torch.Tensor, captions: list[Caption], title: str) -> Picture:
    """Per sample a block: the image, then each channel's activations (each scaled to its own range), 16 to a
    row; `maps` holds the channels to show."""
    n, channels = len(captions), maps.shape[1]
    per_row = min(channels, CHANNELS_PER_ROW)
    block = math.ceil(channels / per_row)  # rows per sample
    size = ((per_row + 1) * SMALL_PANEL, n * block * (SMALL_PANEL + CAPTION / 2) + HEADER)
    fig, axes = _figure(size, n * block, per_row + 1, title, CAPTION / 2 / (SMALL_PANEL + CAPTION / 2))
    for i, caption in enumerate(captions):
        _show_image(axes[i * block][0], pixels[i])
        axes[i * block][0].set_title(caption.true, fontsize=7)
        for c in range(channels):
            ax = axes[i * block + c // per_row][1 + c % per_row]
            ax.imshow(maps[i, c].numpy(), cmap="viridis")
            ax.set_title(f"ch {c}", fontsize=7)
    return _rendered(fig)


def kernel_grid(weights: torch.Tensor, title: str) -> Picture:
    """The first KERNELS_SHOWN kernels: RGB when they read 3 channels (each stretched to [0, 1]), otherwise their
    mean over the input channels on one shared blue-white-red scale centred on zero."""
    shown = weights[:KERNELS_SHOWN]
    columns, rows = min(len(shown), KERNELS_PER_ROW), math.ceil(len(shown) / KERNELS_PER_ROW)
    size = (columns * SMALL_PANEL, rows * (SMALL_PANEL + CAPTION / 2) + HEADER)
    fig, axes = _figure(size, rows, columns, title, CAPTION / 2 / (SMALL_PANEL + CAPTION / 2))
    grey = shown.mean(dim=1)
    limit = float(grey.abs().max()) or 1.0
    for k in range(len(shown)):
        ax = axes[k // columns][k % columns]
        if shown.shape[1] == 3:
            rgb = shown[k] - shown[k].min()
            ax.imshow((rgb / rgb.max().clamp_min(1e-12)).permute(1, 2, 0).numpy())
        else:
            ax.imshow(grey[k].numpy(), cmap="bwr", vmin=-limit, vmax=limit)
        ax.set_title(f"{k}", fontsize=7)
    return _rendered(fig)


def _figure(inches: tuple[float, float], rows: int, columns: int, title: str, caption_share: float
            ) -> tuple[Any, list[list[Any]]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=inches, dpi=DPI)
    header = HEADER / inches[1]
    axes = fig.subplots(rows, columns, squeeze=False,
                        gridspec_kw={"left": 0.01, "right": 0.99, "bottom": 0.01, "top": 1 - header,
                                     "wspace": 0.05, "hspace": caption_share / (1 - caption_share)})
    for row in axes:
        for ax in row:
            ax.axis("off")
    fig.suptitle(title, fontsize=10, y=1 - 0.15 * header)
    return fig, axes


def _show_image(ax: Any, pixels: torch.Tensor) -> None:
    """A [C, H, W] image in [0, 1]: grey for one channel, colour for three."""
    if pixels.shape[0] == 1:
        ax.imshow(pixels[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(pixels[:3].permute(1, 2, 0).clamp(0, 1).numpy())


def picture_of(fig: Any) -> Picture:
    """A matplotlib figure drawn by another module (the decision regions) as a Picture."""
    return _rendered(fig)


def _rendered(fig: Any) -> Picture:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    canvas.print_png(buffer)  # draws the figure, then encodes exactly the canvas's pixels
    rgb = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
    return Picture(buffer.getvalue(), rgb)
