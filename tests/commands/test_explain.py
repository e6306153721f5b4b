"""`trainctl explain` on tiny trained runs: the PNG grid and its TensorBoard copy for each kind of method, the
default method per model, and every refusal (exit 2, one message, nothing written).

The pictures come from the real CLI in a subprocess; the refusals and two more methods go through the same
entry point in process (`trainctl.cli.main`), which saves a torch start-up per case."""

import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import NO_SYSTEM_DATA, run_cli, run_dirs
from trainctl.cli import main
from trainctl.commands.explain import check_images
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.explain.render import DPI, heatmap_inches

pytestmark = pytest.mark.slow

TINY = [NO_SYSTEM_DATA, "trainer.epochs=1", "trainer.max_steps_per_epoch=3"]


def train(tmp_path_factory, fake_fashion, name: str, *model: str) -> Path:
    cwd = tmp_path_factory.mktemp(name)
    proc = run_cli(["train", *model, f"dataset.root={fake_fashion}", *TINY], cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run] = run_dirs(cwd)
    return run


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, fake_fashion) -> Path:
    return train(tmp_path_factory, fake_fashion, "cnn", "model=cnn", "model.channels=[4,8]")


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory, fake_fashion) -> Path:
    """A model that ends in global average pooling and one linear layer, as the original CAM needs."""
    return train(tmp_path_factory, fake_fashion, "resnet", "model=resnet", "trainer.batch_size=16",
                 "trainer.eval_batch_size=32", "trainer.max_eval_batches=1")


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, fake_fashion) -> Path:
    return train(tmp_path_factory, fake_fashion, "mlp", "model=mlp", "model.hidden=[16]")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header, after checking it is one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def tensorboard_images(run: Path) -> dict[str, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    return {tag: events.Images(tag) for tag in events.Tags()["images"] if tag.startswith("visuals/explain_")}


def files(run: Path) -> set[Path]:
    return set(run.rglob("*"))


def test_gradcam_is_the_cnns_default_and_draws_a_png_and_a_tensorboard_image(cnn_run):
    proc = run_cli(["explain", f"ckpt={cnn_run}", "n=5"], cnn_run.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    png = cnn_run / "explain" / "gradcam_test.png"
    assert f"written to {png}" in " ".join(proc.stdout.split())
    width, height = png_size(png)
    inches = heatmap_inches(5)  # 2 rows of 4 samples, each drawn as image + overlay
    assert (width, height) == (round(inches[0] * DPI), round(inches[1] * DPI)) == (1200, 460)
    [image] = tensorboard_images(cnn_run)["visuals/explain_gradcam"]
    assert (image.width, image.height, image.step) == (width, height, 1)  # at the checkpoint's epoch
    assert not list((cnn_run / "explain").glob(".*tmp*"))


def jet_extremes(png: Path) -> tuple[int, int]:
    """(deep red, deep blue) pixel counts in a heatmap grid: both ends of the colour map, which only a map that
    varies over the image reaches (the images themselves are grey, the captions' red text is a few pixels)."""
    from PIL import Image

    rgb = torch.from_numpy(np.array(Image.open(png).convert("RGB"))).int()
    r, g, b = rgb.unbind(-1)
    return int(((r > 150) & (g < 60) & (b < 60)).sum()), int(((b > 150) & (r < 60) & (g < 60)).sum())


def test_cam_of_a_global_average_pooling_model_through_the_cli(resnet_run):
    """The original CAM on the resnet: the pooled layer and the linear layer are found and named, the grid is a
    PNG of the heatmap layout's size whose maps span the colour map, and TensorBoard gets the same picture."""
    proc = run_cli(["explain", f"ckpt={resnet_run}", "method=cam", "n=4"], resnet_run.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    png = resnet_run / "explain" / "cam_test.png"
    out = " ".join(proc.stdout.split())
    assert f"CAM on layer 'layer4' weighted by 'fc': written to {png}" in out and "empty" not in out
    inches = heatmap_inches(4)  # one row of 4 samples, each drawn as image + overlay
    assert png_size(png) == (round(inches[0] * DPI), round(inches[1] * DPI)) == (1200, 260)
    red, blue = jet_extremes(png)
    assert red > 500 and blue > 500, (red, blue)  # a constant map would be one colour all over
    [image] = tensorboard_images(resnet_run)["visuals/explain_cam"]
    assert (image.width, image.height) == (1200, 260)


def test_cam_of_a_model_without_global_average_pooling_names_gradcam(cnn_run):
    """The cnn flattens its maps into a linear layer: no class activation map of the original kind exists."""
    before = files(cnn_run)
    proc = run_cli(["explain", f"ckpt={cnn_run}", "method=cam"], cnn_run.parent)
    assert proc.returncode == 2
    err = " ".join(proc.stderr.split())
    assert ("method=cam needs a model that ends in global average pooling followed by one linear layer "
            "(resnet, torchvision's classifiers), and the model 'cnn' does not: its last linear layer 'fc' reads "
            "'relu2' (ReLU), not a global average pool.") in err
    assert "Use method=gradcam, which works on any conv layer." in err and "Traceback" not in err
    assert files(cnn_run) == before


def test_saliency_is_the_mlps_default(mlp_run):
    proc = run_cli(["explain", f"ckpt={mlp_run / 'checkpoints' / 'last.pt'}", "n=3", "split=val"], mlp_run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png_size(mlp_run / "explain" / "saliency_val.png") == (900, 260)  # one row of 3 samples
    assert "visuals/explain_saliency" in tensorboard_images(mlp_run)


@pytest.mark.parametrize(("args", "png", "size", "said"), [
    (["method=gradcampp", "n=2", "class=Bag"], "gradcampp_test_class8.png", (600, 260),
     "Grad-CAM++ on layer 'conv2'"),
    (["method=featuremaps", "layer=conv2"], "featuremaps_test.png", (900, 560),  # all 8 channels by default
     "feature maps of layer 'conv2', 8 of 8 channels"),
    (["method=featuremaps", "layer=3", "channels=3", "n=2"], "featuremaps_test.png", (400, 310),  # 3: conv2's index
     "feature maps of layer 'conv2', 3 of 8 channels"),
    (["method=kernels"], "kernels.png", (400, 185), "kernels of layer 'conv1'"),  # the first conv's 4 kernels
    (["method=kernels", "layer=conv2"], "kernels.png", (800, 185), "kernels of layer 'conv2'"),  # its 8
    (["method=gradcam", "layer=relu1", "n=2"], "gradcam_test.png", (600, 260), "Grad-CAM on layer 'relu1'"),
    (["method=guided", "n=2"], "guided_test.png", (600, 260), "guided backprop"),
    (["method=guidedgradcam", "n=2", "layer=conv1"], "guidedgradcam_test.png", (600, 260),
     "guided Grad-CAM on layer 'conv1'"),
])
def test_more_methods_in_process(cnn_run, capsys, args, png, size, said):
    assert main(["explain", f"ckpt={cnn_run}", *args]) == 0
    assert png_size(cnn_run / "explain" / png) == size
    assert f"visuals/explain_{args[0].removeprefix('method=')}" in tensorboard_images(cnn_run)
    out = " ".join(capsys.readouterr().out.split())
    assert f"{said}: written to {cnn_run / 'explain' / png}" in out


REFUSALS = [
    (["method=gradcan"], "method=gradcan is not a method of trainctl explain; did you mean 'gradcam'?"),
    (["n=0"], "n=0 is not a number of images from 1 to 64"),
    (["method=featuremaps", "channels=65"], "channels=65 is not a number of feature maps from 1 to 64"),
    (["channels=4"], "channels=4 is an option of method=featuremaps only"),
    (["layer=9"], "layer=9 is not a layer of the model 'cnn'. Layers with feature maps: conv1, relu1, pool1, conv2, "
                  "relu2"),
    (["layer=conv3"], "layer=conv3 is not a layer of the model 'cnn'; did you mean 'conv2'? Layers with feature maps:"),
    (["layer=flatten"], "layer=flatten (Flatten) gives outputs of shape (1, 392), not feature maps"),
    (["layer=5"], "layer=5 (flatten: Flatten) gives outputs of shape (1, 392), not feature maps"),
    (["method=kernels", "layer=1"], "layer=1 is not a conv layer of the model 'cnn'. Its conv layers: conv1, conv2"),
    (["class=Shoe"], "class=Shoe is not a class of this dataset: give an index or a name (0=T-shirt/top,"),
    (["class=10"], "class=10 is out of range: this model has classes 0 to 9"),
    (["split=dev"], "split=dev is not one of test, val, train"),
    (["method=cam"], "method=cam needs a model that ends in global average pooling followed by one linear layer"),
    (["method=regions"], "method=regions draws a classifier's decision regions over the plane of its two input "
                         "features, but the 'fashionmnist' dataset's inputs are shaped (1, 28, 28)"),
]


@pytest.mark.parametrize(("args", "message"), REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_bad_input_is_refused_and_writes_nothing(cnn_run, capsys, args, message):
    before = files(cnn_run)
    assert main(["explain", f"ckpt={cnn_run}", *args]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err
    assert files(cnn_run) == before


def test_guided_backprop_needs_no_conv_layer(mlp_run):
    """Guided backpropagation reaches the mlp's ReLUs as well as a convnet's."""
    proc = run_cli(["explain", f"ckpt={mlp_run}", "method=guided", "n=3"], mlp_run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    png = mlp_run / "explain" / "guided_test.png"
    assert f"guided backprop: written to {png}" in " ".join(proc.stdout.split())
    assert png_size(png) == (900, 260)
    red, blue = jet_extremes(png)
    assert red > 50 and blue > 500, (red, blue)  # a map that varies: strong somewhere, nothing elsewhere


@pytest.mark.parametrize("method", ["gradcam", "featuremaps", "kernels", "guidedgradcam"])
def test_a_method_the_mlp_cannot_take_names_saliency(mlp_run, capsys, method):
    before = files(mlp_run)
    assert main(["explain", f"ckpt={mlp_run}", f"method={method}"]) == 2
    assert "the model 'mlp' has no conv layer for" in capsys.readouterr().err
    assert files(mlp_run) == before


@pytest.mark.parametrize(("spec", "message"), [
    (DataSpec((50, 1), 0, "regression"), "the 'sine' dataset's inputs are shaped (50, 1), not images (C, H, W)"),
    (DataSpec((1, 8, 8), 0, "regression"), "the 'sine' dataset is a regression task: explain a classifier"),
])
def test_a_dataset_that_is_not_images_of_classes_is_refused(spec, message):
    with pytest.raises(UserError, match=re.escape(message)):
        check_images("sine", spec)


def test_a_checkpoint_naming_code_is_refused_like_eval(cnn_run, tmp_path, capsys):
    run = tmp_path / "runs" / "shared"
    shutil.copytree(cnn_run, run, ignore=shutil.ignore_patterns("explain", "*.explain"))
    payload = tmp_path / "PWNED"
    path = run / "checkpoints" / "best.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["loss"] = {"_target_": "os.system", "command": f"touch {payload}"}
    torch.save(state, path)
    assert main(["explain", f"ckpt={run}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "names code to run (loss._target_=os.system)" in err and "trust_targets=true" in err
    assert not payload.exists() and not (run / "explain").exists()
    assert not list(run.glob("*.explain"))


DRIVER = """
import json, sys
from trainctl.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize(("args", "code"), [(["explain", "--help"], 0), (["explain", "ckpt=x", "method=camm"], 2),
                                            (["explain", "ckpt=x", "n=many"], 2)])
def test_help_and_bad_options_answer_without_torch(tmp_path, args, code):
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"code": code, "torch": False}, proc.stderr


def test_decision_regions_of_a_two_feature_classifier(tmp_path):
    """`explain method=regions` on the Gaussian toy set: the training points over the predicted classes."""
    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    proc = run_cli(["explain", f"ckpt={run}", "method=regions"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    png = run / "explain" / "regions_train.png"
    assert f"decision regions: written to {png}" in " ".join(proc.stdout.split())
    assert png_size(png) == (600, 550)
    assert "visuals/explain_regions" in tensorboard_images(run)
