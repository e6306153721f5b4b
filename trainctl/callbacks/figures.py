"""Figures of the best model's test predictions: the confusion matrix and per-class precision-recall curves
(classification), predictions against targets (regression).

Figures are drawn with matplotlib's object API and rendered by its Agg canvas here, never through pyplot: no
global figure state, no GUI backend, whatever `MPLBACKEND` says.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import torch

from trainctl.callbacks.images import add_picture
from trainctl.callbacks.predictions import Predictions

MAX_ANNOTATED = 30  # classes up to which each cell of the confusion matrix shows its count
SEQUENCES = 4  # regression: sequences drawn, one panel each
_UNSAFE_TAG = re.compile(r"[^-/\w.]")


def tag_safe(name: str) -> str:
    """A class name as TensorBoard accepts it in a tag (`Ankle boot` → `Ankle_boot`, `(2,2)` → `2_2`); torch
    would rename it too, with a warning per tag."""
    return _UNSAFE_TAG.sub("_", name).strip("_") or "_"


def render(figure: Any) -> np.ndarray:
    """A matplotlib figure as an [H, W, 3] uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def confusion_counts(targets: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[true, predicted] counts, as one bincount."""
    flat = targets.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def confusion_figure(counts: torch.Tensor, names: Sequence[str], title: str) -> Any:
    """The confusion matrix: colours are each true class's share (rows sum to 1, so a rare class reads as well
    as a common one), numbers are the counts."""
    from matplotlib.figure import Figure

    n = len(names)
    shares = (counts.float() / counts.sum(1, keepdim=True).clamp(min=1)).numpy()
    # Compact, so that TensorBoard's card (about 340 pixels wide) shrinks it little: a 10-class matrix is about
    # 500 pixels wide and its counts stay readable there (at 920 pixels they shrank to 3 pixels).
    side = min(max(3.6, 0.32 * n + 1.0), 40.0)
    figure = Figure(figsize=(side + 0.9, side), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    shown = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(shown, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=9 if n <= MAX_ANNOTATED else 5)
    ax.set_yticks(range(n), names, fontsize=9 if n <= MAX_ANNOTATED else 5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    if n <= MAX_ANNOTATED:
        for (i, j), count in np.ndenumerate(counts.numpy()):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8 if count < 1000 else 7,
                    color="white" if shares[i, j] > 0.5 else "black")
    return figure


def write_classification(writer: Any, predictions: Predictions, names: Sequence[str], step: int) -> None:
    """The confusion matrix figure and one precision-recall curve per class (tab PR CURVES)."""
    probs, targets = predictions.outputs, predictions.targets
    counts = confusion_counts(targets, probs.argmax(1), len(names))
    title = f"test split, best epoch ({step}): {int(counts.sum()):,} samples"
    add_picture(writer, "visuals/confusion_matrix", render(confusion_figure(counts, names, title)), step,
                compress_level=6)
    for c, name in enumerate(names):
        writer.add_pr_curve(f"pr_curve/{tag_safe(name)}", targets == c, probs[:, c], step)


def regression_figure(predictions: Predictions, title: str) -> Any:
    """Predictions against targets: a panel per sequence for the first few test samples (with the input when it
    has the target's length), or one scatter of every sample for a target of one value."""
    from matplotlib.figure import Figure

    targets = predictions.targets.flatten(1).numpy()
    outputs = predictions.outputs.flatten(1).numpy()
    if targets.shape[1] == 1:
        figure = Figure(figsize=(5.5, 5), dpi=100, layout="constrained")
        ax = figure.add_subplot()
        ax.scatter(targets[:, 0], outputs[:, 0], s=6, alpha=0.5)
        low, high = float(min(targets.min(), outputs.min())), float(max(targets.max(), outputs.max()))
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="perfect")
        ax.set_xlabel("target")
        ax.set_ylabel("prediction")
        ax.legend()
        figure.suptitle(title)
        return figure
    inputs = predictions.first_inputs.flatten(1).numpy()
    count = min(SEQUENCES, len(targets))
    figure = Figure(figsize=(10, 2.2 * count + 0.6), dpi=100, layout="constrained")
    for i, ax in enumerate(figure.subplots(count, 1, sharex=True, squeeze=False)[:, 0]):
        if i < len(inputs) and inputs.shape[1] == targets.shape[1]:
            ax.plot(inputs[i], color="grey", linewidth=1, alpha=0.6, label="input")
        ax.plot(targets[i], color="black", linewidth=1.5, label="target")
        ax.plot(outputs[i], color="tab:orange", linewidth=1.5, linestyle="--", label="prediction")
        ax.set_ylabel(f"sample {i}")
    figure.axes[0].legend(loc="upper right", fontsize=8, ncols=3)
    figure.axes[-1].set_xlabel("time step")
    figure.suptitle(title)
    return figure


def write_regression(writer: Any, predictions: Predictions, step: int) -> None:
    title = f"test split, best epoch ({step}): prediction against target"
    add_picture(writer, "visuals/predictions", render(regression_figure(predictions, title)), step,
                compress_level=6)
