"""Grids of images with their true and predicted labels written under each, for TensorBoard's IMAGES tab.

Cheap by design, because the validation grid is drawn every epoch (a matplotlib figure would cost a good part of
a second each time): the images are laid out once, scaled up so a label fits under each; each label text is
rendered once and then pasted in its colour; the PNG is encoded with fast compression. An epoch's grid costs a
few milliseconds. The layout is a few tensor ops here rather than torchvision's `make_grid`, whose import alone
takes a second or more, and a plain run never imports torchvision otherwise.

Images are shown as they were stored: the dataset's normalisation is undone.
"""

from __future__ import annotations

import functools
import io
import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from torch.nn import functional as F

from trainctl.callbacks.predictions import Predictions

if TYPE_CHECKING:  # Pillow is imported where a picture is drawn: a run without pictures never loads it
    from PIL import Image

# Sized for TensorBoard's image card, which shows a picture about 340 pixels wide unless asked for its actual size:
# three images a row keep a 16-pixel label's capitals 8 pixels high there (eight a row of 11-pixel text came out
# at 3 pixels, unreadable).
CELL_WIDTH = 168  # images narrower than this are scaled up (nearest: pixels stay sharp) so a label fits
MAX_WIDTH = 224  # larger images are scaled down: the grid must stay a picture, not a poster
FONT_SIZE = 16
LINE_HEIGHT = 20
BAND = 2 * LINE_HEIGHT + 4  # pixels under each image for two lines of text
PADDING = 2
PAD_GREY = 0.35
PER_ROW = 3
WHITE, GREEN, RED = (235, 235, 235), (80, 220, 100), (255, 80, 80)

Line = tuple[str, tuple[int, int, int]]  # a text and its colour


def is_image_batch(x: torch.Tensor) -> bool:
    """Only [N, C, H, W] inputs are pictures (not the `sine` sequences or the `blobs` points)."""
    return is_image_shape(tuple(x.shape[1:]))


def is_image_shape(sample_shape: tuple[int, ...]) -> bool:
    """Whether samples of this shape ([C, H, W]) are pictures: known from the data's spec before any pass."""
    return len(sample_shape) == 3 and sample_shape[0] in (1, 3, 4)


def for_display(x: torch.Tensor, dataset: DictConfig) -> torch.Tensor:
    """Images in [0, 1] as stored, from a batch as the model saw it: the dataset's `(x - mean) / std` undone."""
    x = x.float()
    if dataset.get("normalize", False) and "mean" in dataset and "std" in dataset:
        mean = torch.tensor(list(dataset.mean), device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(list(dataset.std), device=x.device).view(1, -1, 1, 1)
        x = x * std + mean
    return x.clamp(0.0, 1.0)


def add_picture(writer: Any, tag: str, picture: Image.Image | np.ndarray, step: int, compress_level: int = 1
                ) -> None:
    """An RGB picture as a TensorBoard image. torch's `add_image` converts to float and back and compresses
    the PNG hard, several times the cost of the rest of an epoch's grid."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buffer = io.BytesIO()
    (image if image.mode == "RGB" else image.convert("RGB")).save(buffer, format="PNG", compress_level=compress_level)
    proto = Summary.Image(height=image.height, width=image.width, colorspace=3,
                          encoded_image_string=buffer.getvalue())
    writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=proto)]), step)


@functools.lru_cache(maxsize=1)
def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except Exception:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(text: str, width: int) -> str:
    """The text, cut with an ellipsis to fit `width` pixels."""
    font = _font()
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


@functools.lru_cache(maxsize=1024)
def _text_mask(text: str, width: int) -> Image.Image:
    """A label rendered once as a mask, fitted to `width` pixels: drawing it again is a paste."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (width, LINE_HEIGHT))
    ImageDraw.Draw(mask).text((0, 0), _fit(text, width), fill=255, font=_font())
    return mask


def _cell_size(h: int, w: int) -> tuple[int, int]:
    factor = math.ceil(CELL_WIDTH / w) if w < CELL_WIDTH else min(1.0, MAX_WIDTH / w)
    return max(1, round(h * factor)), max(1, round(w * factor))


def image_grid(images: torch.Tensor) -> Image.Image:
    """A grid of [N, C, H, W] images in [0, 1] (on any device), `PER_ROW` a row, each scaled to a readable size
    with an empty band under it for its labels (written by `label_grid`)."""
    from PIL import Image

    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    images = images[:, :3]  # RGBA: drop the alpha
    size = _cell_size(*images.shape[-2:])
    if size != tuple(images.shape[-2:]):
        upscale = size[1] >= images.shape[-1]
        images = F.interpolate(images, size=size, mode="nearest" if upscale else "area")
    n, (h, w) = len(images), size
    rows, cols = math.ceil(n / PER_ROW), min(n, PER_ROW)
    cells = torch.full((rows * cols, 3, h + BAND + PADDING, w + PADDING), PAD_GREY)
    cells[:n, :, :h + BAND, :w] = 0.0  # the label band is black
    cells[:n, :, :h, :w] = images
    grid = cells.view(rows, cols, 3, h + BAND + PADDING, w + PADDING).permute(2, 0, 3, 1, 4)
    grid = F.pad(grid.reshape(3, rows * (h + BAND + PADDING), cols * (w + PADDING)), (PADDING, 0, PADDING, 0),
                 value=PAD_GREY)
    return Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy())


def label_grid(grid: Image.Image, cell: tuple[int, int], labels: Sequence[Sequence[Line]]) -> Image.Image:
    """A copy of `grid` (from `image_grid`, cells of `cell` = (height, width) pixels above the band) with the
    lines of `labels[i]` written under image i."""
    picture = grid.copy()
    h, w = cell
    for i, lines in enumerate(labels):
        row, col = divmod(i, PER_ROW)
        x = PADDING + col * (w + PADDING) + 2
        y = PADDING + row * (h + BAND + PADDING) + h + 1
        for k, (text, colour) in enumerate(lines):
            top = y + LINE_HEIGHT * k
            picture.paste(colour, (x, top, x + w - 4, top + LINE_HEIGHT), _text_mask(text, w - 4))
    return picture


def labelled_images(images: torch.Tensor, labels: Sequence[Sequence[Line]]) -> Image.Image:
    """`image_grid` and `label_grid` in one go, for a grid drawn once."""
    return label_grid(image_grid(images), _cell_size(*images.shape[-2:]), labels)


def prediction_labels(names: Sequence[str], targets: Sequence[int], predicted: Sequence[int]) -> list[list[Line]]:
    """Two lines per image: the true class, and the predicted one in green when right, red when wrong."""
    return [[(f"true: {names[t]}", WHITE), (f"pred: {names[p]}", GREEN if t == p else RED)]
            for t, p in zip(targets, predicted)]


def labelled_samples(x: torch.Tensor, y: torch.Tensor, dataset: DictConfig, names: Sequence[str]) -> Image.Image:
    """A grid of samples as stored, each with its class under it: what the data looks like before any model."""
    lines = [[(names[t], WHITE)] for t in y.tolist()]
    return label_grid(image_grid(for_display(x, dataset)), _cell_size(*x.shape[-2:]), lines)


def most_wrong_labels(names: Sequence[str], targets: Sequence[int], probs: torch.Tensor) -> list[list[Line]]:
    """Two lines per image: the true class with the probability the model gave it, and the predicted class
    with its probability (red, unless the model was right after all)."""
    lines = []
    for t, p in zip(targets, probs.tolist()):
        guess = max(range(len(p)), key=p.__getitem__)
        lines.append([(f"true: {names[t]} {p[t]:.0%}", WHITE),
                      (f"pred: {names[guess]} {p[guess]:.0%}", GREEN if guess == t else RED)])
    return lines


def most_wrong_picture(predictions: Predictions, names: Sequence[str], dataset: DictConfig) -> Image.Image:
    """The samples a pass got most wrong, worst first, labelled by `most_wrong_labels`."""
    worst = predictions.worst
    labels = most_wrong_labels(names, predictions.targets[worst].tolist(), predictions.outputs[worst])
    return labelled_images(for_display(predictions.worst_inputs, dataset), labels)


class ValidationGrid:
    """The first `n` validation samples with the model's current predictions, each epoch.

    The batch, its display picture and the class names are made once (the split never changes); an epoch costs
    one forward pass of `n` samples, one small host copy and the labels' drawing."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, dataset: DictConfig, names: Sequence[str]) -> None:
        self.x, self.names = x, list(names)
        self.targets = y.tolist()
        self.cell = _cell_size(*x.shape[-2:])
        self.grid = image_grid(for_display(x, dataset))

    def picture(self, logits: torch.Tensor) -> Image.Image:
        predicted = logits.argmax(1).tolist()
        return label_grid(self.grid, self.cell, prediction_labels(self.names, self.targets, predicted))
