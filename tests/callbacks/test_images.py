"""The pieces behind the prediction pictures, in process: undoing normalisation, the shared test pass (worst
samples, features, batch limit), the confusion counts and tag names."""

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from trainctl.callbacks.figures import confusion_counts, tag_safe
from trainctl.callbacks.images import (BAND, CELL_WIDTH, GREEN, PADDING, RED, ValidationGrid, for_display,
                                       is_image_batch, most_wrong_labels)
from trainctl.callbacks.predictions import last_linear, predict
from trainctl.data.splits import DataBundle, DataSpec, Split
from trainctl.data.transforms import image_transforms
from trainctl.engine.step import StepSettings


def test_display_undoes_the_datasets_normalisation():
    pixels = torch.randint(0, 256, (3, 3, 5, 5), dtype=torch.uint8)
    dataset = OmegaConf.create({"normalize": True, "mean": [0.2, 0.4, 0.6], "std": [0.3, 0.2, 0.1]})
    _, evaluation = image_transforms(list(dataset.mean), list(dataset.std), True)
    assert torch.allclose(for_display(evaluation(pixels), dataset), pixels / 255.0, atol=1e-5)
    raw = OmegaConf.create({"normalize": False, "mean": [0.5], "std": [0.5]})
    assert torch.allclose(for_display(pixels / 255.0, raw), pixels / 255.0)


def test_only_batches_of_images_are_pictures():
    assert is_image_batch(torch.zeros(2, 1, 8, 8)) and is_image_batch(torch.zeros(2, 3, 8, 8))
    assert not is_image_batch(torch.zeros(2, 50, 1)) and not is_image_batch(torch.zeros(2, 2))


def toy(n: int = 40, classes: int = 3) -> tuple[nn.Module, DataBundle]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, classes))
    split = Split(torch.randn(n, 1, 4, 4), torch.arange(n) % classes)
    return model, DataBundle(split, split, split, DataSpec((1, 4, 4), classes))


def settings() -> StepSettings:
    return StepSettings(OmegaConf.create({"precision": "32", "channels_last": False}), torch.device("cpu"))


def test_one_pass_keeps_the_worst_samples_and_the_first_features():
    model, data = toy()
    p = predict(model, data.test, data, settings(), batch_size=7, max_batches=None, keep_worst=5, keep_first=9,
                features=True)
    x, y = data.test.x, data.test.y
    with torch.no_grad():
        logits = model(x)
        hidden = model[2](model[1](model[0](x)))  # what the last Linear receives
    loss = nn.functional.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(p.outputs, logits.softmax(1), atol=1e-6) and torch.allclose(p.loss, loss, atol=1e-6)
    assert p.worst.tolist() == loss.topk(5).indices.tolist()  # across batches of 7, worst first
    assert torch.equal(p.worst_inputs, x[p.worst]) and torch.equal(p.first_inputs, x[:9])
    assert p.features is not None and torch.allclose(p.features, hidden[:9], atol=1e-6)
    assert not model[3]._forward_pre_hooks  # the hook is gone after the pass


def test_the_pass_stops_at_max_batches_and_tells_a_model_without_a_linear_layer():
    model, data = toy()
    p = predict(model, data.test, data, settings(), batch_size=8, max_batches=2, keep_worst=3, keep_first=0,
                features=False)
    assert len(p.targets) == 16 and p.features is None and p.first_inputs.numel() == 0
    conv = nn.Sequential(nn.Conv2d(1, 3, 4), nn.Flatten())
    assert last_linear(conv) is None and last_linear(model) is model[3]
    assert predict(conv, data.test, data, settings(), 8, None, 0, 4, features=True).features is None


def test_confusion_counts_and_tag_names():
    counts = confusion_counts(torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 1, 1, 2, 0]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert [tag_safe(n) for n in ("Ankle boot", "T-shirt/top", "(2,2)", "(-2,-2)")] == [
        "Ankle_boot", "T-shirt/top", "2_2", "-2_-2"]


def test_most_wrong_labels_name_both_classes_with_their_probabilities():
    probs = torch.tensor([[0.1, 0.9], [0.6, 0.4]])
    lines = most_wrong_labels(["cat", "dog"], [0, 0], probs)
    assert lines[0] == [("true: cat 10%", lines[0][0][1]), ("pred: dog 90%", RED)]
    assert lines[1][1] == ("pred: cat 60%", GREEN)


def test_the_validation_grid_colours_each_prediction():
    dataset = OmegaConf.create({"normalize": False})
    grid = ValidationGrid(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]), dataset, ["a", "b"])
    right = np.asarray(grid.picture(torch.tensor([[1.0, 0.0], [0.0, 1.0]])))
    wrong = np.asarray(grid.picture(torch.tensor([[0.0, 1.0], [1.0, 0.0]])))
    band = np.s_[PADDING + CELL_WIDTH: PADDING + CELL_WIDTH + BAND, :]  # 28 pixels scaled 6x
    assert greens(right[band]) > 20 and reds(right[band]) == 0
    assert reds(wrong[band]) > 20 and greens(wrong[band]) == 0


def greens(a: np.ndarray) -> int:
    return int(((a[..., 1] > 180) & (a[..., 0] < 120)).sum())


def reds(a: np.ndarray) -> int:
    return int(((a[..., 0] > 200) & (a[..., 1] < 120)).sum())
