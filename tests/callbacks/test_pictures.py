"""Pictures of predictions through the real CLI: the validation grid each epoch, the most wrong test images, the
confusion matrix, PR curves, projector files, the regression figure, and nothing of them when switched off."""

import io
import json
import math
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs
from trainctl.callbacks.images import BAND, PADDING, PER_ROW
from trainctl.config.compose import compose
from trainctl.data.catalog import build_dataset

pytestmark = pytest.mark.slow

FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
TINY = ["trainer.epochs=2", "trainer.max_steps_per_epoch=3", "trainer.progress=false", NO_SYSTEM_DATA]


def events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def picture(event) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, fake_fashion):
    """One classification run with every picture on, the projector included, on part of the test split; the
    grids hold the default number of images (12)."""
    cwd = tmp_path_factory.mktemp("pictures")
    args = ["train", f"dataset.root={fake_fashion}", *TINY, "tensorboard.projector=true",
            "tensorboard.projector_samples=50", "tensorboard.projector_pixels=true", "trainer.eval_batch_size=64",
            "trainer.max_eval_batches=2"]
    proc = run_cli(args, cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(cwd)
    return run, events(run), json.loads((run / "metrics.json").read_text())


def test_the_validation_grid_is_drawn_each_epoch_from_the_stored_pixels(fashion_run, fake_fashion):
    run, acc, _ = fashion_run
    grids = acc.Images("visuals/val_predictions")
    assert [e.step for e in grids] == [1, 2]
    cell = 6 * 28  # 28-pixel images scaled 6x so their labels fit under them
    assert PER_ROW == 3
    assert (grids[0].width, grids[0].height) == (3 * (cell + PADDING) + PADDING,
                                                 4 * (cell + BAND + PADDING) + PADDING)  # 12 images: 4 rows of 3
    cfg = compose([f"dataset.root={fake_fashion}", NO_SYSTEM_DATA])
    stored = build_dataset(cfg.dataset, cfg.seed).val.x  # uint8 pixels, before normalisation
    shown = picture(grids[-1])
    for i in (0, 11):  # the first and last image: the normalisation undone, within rounding
        row, col = divmod(i, PER_ROW)
        top, left = PADDING + row * (cell + BAND + PADDING), PADDING + col * (cell + PADDING)
        pixels = shown[top:top + cell:6, left:left + cell:6, 0].astype(int)
        assert np.abs(pixels - stored[i, 0].numpy().astype(int)).max() <= 1


def test_the_first_training_samples_are_drawn_once_with_their_labels(fashion_run, fake_fashion):
    """As the tutorials look at their data first: the first training samples as stored, each with its class in
    white under it (no prediction, so no green or red), once, at step 0."""
    run, acc, _ = fashion_run
    [grid] = acc.Images("visuals/train_samples")
    cell = 6 * 28
    assert grid.step == 0 and (grid.width, grid.height) == (PER_ROW * (cell + PADDING) + PADDING,
                                                            4 * (cell + BAND + PADDING) + PADDING)  # 12: 4 rows
    cfg = compose([f"dataset.root={fake_fashion}", NO_SYSTEM_DATA])
    stored = build_dataset(cfg.dataset, cfg.seed).train.x
    shown = picture(grid).astype(int)
    for i in (0, 11):
        row, col = divmod(i, PER_ROW)
        top, left = PADDING + row * (cell + BAND + PADDING), PADDING + col * (cell + PADDING)
        pixels = shown[top:top + cell:6, left:left + cell:6, 0]
        assert np.abs(pixels - stored[i, 0].numpy().astype(int)).max() <= 1
    band = shown[PADDING + cell:PADDING + cell + BAND, PADDING:PADDING + cell]  # the first image's label
    r, g, b = band[..., 0], band[..., 1], band[..., 2]
    assert ((r > 200) & (g > 200) & (b > 200)).sum() > 20  # white text
    assert not ((g > 150) & (r < 100)).any() and not ((r > 150) & (g < 100)).any()  # neither green nor red


def test_labels_are_green_when_right_and_red_when_wrong(fashion_run):
    _, acc, _ = fashion_run
    shown = picture(acc.Images("visuals/val_predictions")[-1]).astype(int)
    r, g = shown[..., 0], shown[..., 1]
    green = ((g > 180) & (r < 120)).sum()
    red = ((r > 200) & (g < 120)).sum()
    assert green + red > 200  # the predicted labels are written in colour
    worst = picture(acc.Images("visuals/test_most_wrong")[0]).astype(int)
    assert worst.shape[:2] == shown.shape[:2]  # 12 images as well


CARD_WIDTH = 340  # pixels: how wide TensorBoard's image card shows a picture unless asked for its actual size


@pytest.mark.parametrize("tag", ["visuals/val_predictions", "visuals/test_most_wrong"])
def test_labels_stay_legible_at_tensorboards_card_size(fashion_run, tag):
    """The labels' capitals, shrunk with the picture to the card's width, are still 8 pixels high (with eight
    images a row of 11-pixel text they shrank to 3)."""
    _, acc, _ = fashion_run
    shown = picture(acc.Images(tag)[-1]).astype(int)
    band = shown[PADDING + 6 * 28: PADDING + 6 * 28 + BAND, PADDING: PADDING + 6 * 28]  # the first image's labels
    inked = np.flatnonzero((band.max(axis=2) > 150).any(axis=1))  # rows with text: white, green or red
    first_line = inked[inked < BAND // 2]
    letter_height = first_line.max() - first_line.min() + 1
    assert letter_height * CARD_WIDTH / shown.shape[1] >= 7.5


def test_the_most_wrong_test_images_and_the_confusion_matrix_come_at_the_best_epoch(fashion_run):
    _, acc, metrics = fashion_run
    for tag in ("visuals/test_most_wrong", "visuals/confusion_matrix"):
        [event] = acc.Images(tag)
        assert event.step == metrics["best_epoch"]
    [matrix] = acc.Images("visuals/confusion_matrix")
    # 10 classes, compact enough that a 340-pixel card shrinks it by a third at most, so its counts stay readable
    assert 400 < matrix.width <= 1.5 * CARD_WIDTH and matrix.height > 350


def test_one_pr_curve_per_class_over_the_evaluated_test_samples(fashion_run, fake_fashion):
    _, acc, metrics = fashion_run
    tags = [t for t in acc.Tags()["tensors"] if t.startswith("pr_curve/")]
    assert sorted(tags) == sorted(f"pr_curve/{n.replace(' ', '_')}" for n in FASHION_NAMES)
    assert acc.SummaryMetadata("pr_curve/Trouser").plugin_data.plugin_name == "pr_curves"
    [event] = acc.Tensors("pr_curve/Trouser")
    from tensorboard.util import tensor_util

    curve = tensor_util.make_ndarray(event.tensor_proto)  # rows: TP, FP, TN, FN, precision, recall
    assert metrics["test/samples"] == 128  # trainer.max_eval_batches=2 of 64: the pass respects it
    assert curve[:4, 0].sum() == 128
    cfg = compose([f"dataset.root={fake_fashion}", NO_SYSTEM_DATA])
    trousers = int((build_dataset(cfg.dataset, cfg.seed).test.y[:128] == 1).sum())
    assert curve[0, 0] + curve[3, 0] == trousers > 0  # true positives and false negatives: every trouser


def test_the_projector_gets_features_labels_and_thumbnails(fashion_run, fake_fashion):
    run, _, metrics = fashion_run
    config = (run / "projector_config.pbtxt").read_text()
    folder = run / f"{metrics['best_epoch']:05d}" / "test_features"
    assert f'tensor_path: "{folder.relative_to(run)}/tensors.tsv"' in config
    rows = (folder / "tensors.tsv").read_text().splitlines()
    assert len(rows) == 50 and {len(r.split("\t")) for r in rows} == {32 * 7 * 7}  # the cnn head's input
    header, *labels = (folder / "metadata.tsv").read_text().splitlines()
    assert header == "label\tpredicted"
    cfg = compose([f"dataset.root={fake_fashion}", NO_SYSTEM_DATA])
    truth = build_dataset(cfg.dataset, cfg.seed).test.y[:50].tolist()
    assert [line.split("\t")[0] for line in labels] == [FASHION_NAMES[t] for t in truth]
    with Image.open(folder / "sprite.png") as sprite:
        assert sprite.size == (math.ceil(math.sqrt(50)) * 28,) * 2


def test_the_projector_also_gets_the_pixels_as_stored(fashion_run, fake_fashion):
    """`tensorboard.projector_pixels`: the same samples' pixels, before any model, as the TensorBoard tutorial
    projects its images; labelled like the features."""
    run, _, metrics = fashion_run
    folder = run / f"{metrics['best_epoch']:05d}" / "test_pixels"
    assert f'tensor_path: "{folder.relative_to(run)}/tensors.tsv"' in (run / "projector_config.pbtxt").read_text()
    rows = [[float(v) for v in r.split("\t")] for r in (folder / "tensors.tsv").read_text().splitlines()]
    cfg = compose([f"dataset.root={fake_fashion}", NO_SYSTEM_DATA])
    stored = build_dataset(cfg.dataset, cfg.seed).test.x[:50].flatten(1).float() / 255  # uint8 as stored
    assert torch.allclose(torch.tensor(rows), stored, atol=1e-4)  # the normalisation undone
    features = run / f"{metrics['best_epoch']:05d}" / "test_features"
    assert (folder / "metadata.tsv").read_text() == (features / "metadata.tsv").read_text()


CONV_ONLY = textwrap.dedent('''
    from torch import nn

    class ConvOnly(nn.Module):
        """A classifier without any nn.Linear: one convolution as wide as the image."""

        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(input_shape[0], num_classes, input_shape[1:]), nn.Flatten())

        def forward(self, x):
            return self.net(x)
''')


def test_switched_off_nothing_is_drawn_and_a_model_without_a_linear_layer_is_a_warning(tmp_path, fake_fashion):
    (tmp_path / "convonly.py").write_text(CONV_ONLY)
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "model" / "convonly.yaml").write_text("_target_: convonly.ConvOnly\n")
    args = ["train", "--config-dir", "myconf", "model=convonly", f"dataset.root={fake_fashion}", *TINY,
            "tensorboard.images=false", "tensorboard.figures=false", "tensorboard.projector=true"]
    proc = run_cli(args, tmp_path, PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    acc = events(run)
    assert acc.Tags()["images"] == []
    assert not [t for t in acc.Tags()["tensors"] if t.startswith("pr_curve/")]
    assert not (run / "projector_config.pbtxt").exists()
    warnings = [line for line in (run / "train.log").read_text().splitlines() if "tensorboard.projector" in line]
    assert len(warnings) == 1 and "ConvOnly has no nn.Linear layer" in warnings[0]
    assert "Traceback" not in proc.stderr


def test_a_regression_run_gets_its_predictions_figure_and_no_image_grids(tmp_path):
    args = ["train", "dataset=sine", "model=gru", "dataset.n_train=200", "dataset.n_test=40", "dataset.length=20",
            "trainer.epochs=1", "trainer.max_steps_per_epoch=2", "trainer.progress=false"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    acc = events(run)
    assert acc.Tags()["images"] == ["visuals/predictions"]
    [figure] = acc.Images("visuals/predictions")
    assert figure.step == 1 and figure.height > 400
    assert not [t for t in acc.Tags()["tensors"] if t.startswith("pr_curve/")]
    assert "WARNING" not in (run / "train.log").read_text()


@pytest.mark.parametrize(("dataset", "tag"), [
    (["experiment=smoke"], "visuals/decision_regions"),
    (["dataset=sine", "model=cnn1d", "dataset.n_train=100", "dataset.n_test=20", "dataset.length=16"],
     "visuals/val_sequence_predictions"),
])
def test_the_small_models_figures_are_drawn_while_they_learn(tmp_path, dataset, tag):
    """`tensorboard.figures_every_n_epochs`: the regression figure (on validation) and the decision regions of a
    2-feature classifier at every N epochs and at the last; the run trains as it would without them."""
    base = ["train", *dataset, "trainer.epochs=3", "trainer.max_steps_per_epoch=2", "trainer.progress=false"]
    proc = run_cli([*base, "tensorboard.figures_every_n_epochs=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    assert [image.step for image in events(run).Images(tag)] == [2, 3]
    assert "WARNING" not in (run / "train.log").read_text()
    (tmp_path / "plain").mkdir()
    proc = run_cli([*base, "tensorboard.figures=false"], tmp_path / "plain")
    assert proc.returncode == 0, proc.stderr
    [plain] = run_dirs(tmp_path / "plain")
    watched, unwatched = (torch.load(r / "checkpoints" / "last.pt", weights_only=True)["model"] for r in (run, plain))
    assert all(torch.equal(watched[k], unwatched[k]) for k in unwatched)


def test_a_two_feature_classifier_gets_its_decision_regions_at_the_end(tmp_path):
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1", "tensorboard.figures=true"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    [image] = events(run).Images("visuals/decision_regions")
    assert image.step == 1 and (image.width, image.height) == (600, 550)
