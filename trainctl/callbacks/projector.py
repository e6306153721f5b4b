"""Penultimate-layer features of test samples for TensorBoard's PROJECTOR tab (PCA, t-SNE, UMAP in the browser):
each point labelled with its true and predicted class and shown as its image thumbnail.

The features are the input of the model's last `nn.Linear`, recorded by a hook during the shared test pass
(`trainctl.callbacks.predictions`). torch's `add_embedding` writes them next to the event file:
`projector_config.pbtxt`, and `<step>/<tag>/` with `tensors.tsv`, `metadata.tsv` and `sprite.png`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from omegaconf import DictConfig
from torch.nn import functional as F

from trainctl.callbacks.images import for_display, is_image_batch
from trainctl.callbacks.predictions import Predictions

TAG = "test_features"
PIXELS_TAG = "test_pixels"
SPRITE_SIDE = 8192  # TensorBoard's largest sprite sheet, in pixels per side
MAX_THUMBNAIL = 64


def thumbnails(inputs: torch.Tensor, dataset: DictConfig) -> torch.Tensor:
    """Images as stored, scaled down so that the sprite sheet of all of them stays within TensorBoard's limit."""
    images = for_display(inputs, dataset)
    per_side = math.ceil(math.sqrt(len(images)))
    side = min(MAX_THUMBNAIL, SPRITE_SIDE // per_side)
    h, w = images.shape[-2:]
    if max(h, w) > side:
        scale = side / max(h, w)
        images = F.interpolate(images, size=(max(1, int(h * scale)), max(1, int(w * scale))), mode="area")
    return images


def write_embedding(writer: Any, predictions: Predictions, names: Sequence[str], dataset: DictConfig,
                    step: int, pixels: bool = False) -> None:
    """The projector's data for the samples whose features were recorded (the first ones of the test split);
    with `pixels`, the same samples' inputs as stored too, under a tag of their own."""
    features = predictions.features
    assert features is not None
    n = len(features)
    inputs = predictions.first_inputs[:n]
    metadata: list[list[str]] | None = None
    header: list[str] | None = None
    if names:  # classification: what each point is, and what the model took it for
        predicted = predictions.outputs[:n].argmax(1).tolist()
        metadata = [[names[t], names[p]] for t, p in zip(predictions.targets[:n].tolist(), predicted)]
        header = ["label", "predicted"]
    images = is_image_batch(inputs)
    label_img = thumbnails(inputs, dataset) if images else None
    writer.add_embedding(features, metadata=metadata, label_img=label_img, global_step=step, tag=TAG,
                         metadata_header=header)
    if pixels:  # the inputs as a user would see them: images with the normalisation undone
        raw = for_display(inputs, dataset) if images else inputs.float()
        writer.add_embedding(raw.flatten(1), metadata=metadata, label_img=label_img, global_step=step,
                             tag=PIXELS_TAG, metadata_header=header)
