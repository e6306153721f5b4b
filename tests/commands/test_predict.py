"""`trainctl predict`: images (a folder with a corrupt file, converted and resized ones), IDX and tensor files give
the predictions the checkpoint's own model gives and that `trainctl eval` scores; bad inputs are one error."""

import csv
import json

import numpy as np
import pytest
import torch

from conftest import NO_SYSTEM_DATA, make_idx_dataset, run_cli, run_dirs
from trainctl.errors import UserError

pytestmark = pytest.mark.slow

TINY = ["trainer.epochs=1", "trainer.max_steps_per_epoch=4", "trainer.progress=false",
        "tensorboard.images=false", "tensorboard.figures=false"]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """A tiny cnn trained on generated Fashion-MNIST files, and what `trainctl eval` says of its test split."""
    cwd = tmp_path_factory.mktemp("predict")
    data = make_idx_dataset(cwd / "data", n_train=300, n_test=100)
    proc = run_cli(["train", "model=cnn", f"dataset.root={data}", NO_SYSTEM_DATA, *TINY], cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(cwd)
    proc = run_cli(["eval", f"ckpt={run}", "device=cpu"], cwd)  # compared with CPU forward passes below
    assert proc.returncode == 0, proc.stderr
    return cwd, run, data, json.loads((run / "eval_test.json").read_text())


def restored(run):
    from trainctl.commands.from_checkpoint import restore_run

    return restore_run(str(run), "cpu", [], False)


def split_images(data):
    from trainctl.data.idx import read_idx

    return read_idx(data / "t10k-images-idx3-ubyte.gz"), read_idx(data / "t10k-labels-idx1-ubyte.gz").long()


@pytest.fixture(scope="module")
def idx_rows(cnn):
    """`predict` on the test split's IDX file, as CSV rows."""
    cwd, run, data, _ = cnn
    proc = run_cli(["predict", f"ckpt={run}", f"inputs={data / 't10k-images-idx3-ubyte.gz'}", "topk=2", "device=cpu"],
                   cwd)
    assert proc.returncode == 0, proc.stderr
    with open(run / "predictions.csv") as f:
        return list(csv.DictReader(f)), proc.stdout


def test_predictions_on_an_idx_file_are_the_models_own_and_score_as_eval_does(cnn, idx_rows):
    _, run, data, evaluated = cnn
    rows, stdout = idx_rows
    images, labels = split_images(data)
    assert len(rows) == len(labels) == 100
    assert list(rows[0]) == ["input", "top1_class", "top1_name", "top1_prob", "top2_class", "top2_name", "top2_prob"]
    assert rows[7]["input"].endswith("t10k-images-idx3-ubyte.gz[7]")
    predicted = torch.tensor([int(r["top1_class"]) for r in rows])
    # The checkpoint's model on the same images, normalised as eval normalises them.
    model_run = restored(run)
    with torch.no_grad():
        logits = model_run.parts.model.eval()(model_run.data.eval_transform(images.unsqueeze(1), None))
    probabilities, classes = logits.softmax(1).topk(2, dim=1)
    assert torch.equal(predicted, classes[:, 0])
    assert [int(r["top2_class"]) for r in rows] == classes[:, 1].tolist()
    assert [float(r["top1_prob"]) for r in rows] == pytest.approx(probabilities[:, 0].tolist(), abs=1e-6)
    assert float((predicted == labels).float().mean()) == pytest.approx(evaluated["test/acc"], abs=1e-9)
    names = model_run.data.spec.class_names
    assert all(r["top1_name"] == names[int(r["top1_class"])] for r in rows)
    assert "the first 10 of 100" in stdout


def test_a_folder_of_images_skips_a_corrupt_one_and_says_what_it_converted(cnn, idx_rows, tmp_path):
    from PIL import Image

    cwd, run, data, _ = cnn
    images, _ = split_images(data)
    folder = tmp_path / "shots"
    (folder / "nested").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(images[i].numpy()).save(folder / f"{i}.png")
    Image.fromarray(images[3].numpy()).save(folder / "nested" / "3.png")  # found recursively
    Image.fromarray(np.stack([images[4].numpy()] * 3, -1)).resize((56, 56)).save(folder / "colour.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out.json"
    proc = run_cli(["predict", f"ckpt={run}", f"inputs={folder}", "format=json", "topk=2", f"out={out}", "device=cpu"],
                   cwd)
    assert proc.returncode == 0, proc.stderr
    said = " ".join((proc.stdout + proc.stderr).split())
    assert "skipped 1 of 6 input file(s) that could not be read" in said and "broken.png" in said
    assert "converted 1 colour image(s) to grey" in said
    assert "resized 1 image(s) to 28x28, the size the model was trained on (from 56x56 (1))" in said
    records = {r["input"].rsplit("/", 1)[-1]: r for r in json.loads(out.read_text())}
    assert sorted(records) == ["0.png", "1.png", "2.png", "3.png", "colour.png"]
    rows, _ = idx_rows
    for i in range(4):  # PNGs of the very pixels: the very predictions
        assert [t["class"] for t in records[f"{i}.png"]["top"]] == [int(rows[i]["top1_class"]),
                                                                   int(rows[i]["top2_class"])]
        assert records[f"{i}.png"]["top"][0]["prob"] == pytest.approx(float(rows[i]["top1_prob"]), abs=1.5e-6)  # two values each printed to 6 decimals: one unit apart at most
    assert not (run / "predictions.json").exists()  # out= was given


def test_npy_and_pt_tensor_files_through_a_glob(cnn, idx_rows, tmp_path):
    cwd, run, data, _ = cnn
    images, _ = split_images(data)
    np.save(tmp_path / "grey.npy", images[:5].numpy())  # uint8 [N, H, W]
    torch.save(images[5:9].float().div(255).unsqueeze(1), tmp_path / "scaled.pt")  # float [N, 1, H, W] in [0, 1]
    out = tmp_path / "tensors.csv"
    proc = run_cli(["predict", f"ckpt={run}", f"inputs={tmp_path}/*.*", f"out={out}", "topk=2", "device=cpu"], cwd)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        got = list(csv.DictReader(f))
    assert [r["input"].rsplit("/", 1)[-1] for r in got] == [*(f"grey.npy[{i}]" for i in range(5)),
                                                            *(f"scaled.pt[{i}]" for i in range(4))]
    rows, _ = idx_rows
    assert [r["top1_class"] for r in got] == [r["top1_class"] for r in rows[:9]]
    assert [float(r["top1_prob"]) for r in got] == pytest.approx([float(r["top1_prob"]) for r in rows[:9]], abs=1.5e-6)  # both printed to 6 decimals


def test_an_input_of_the_wrong_shape_is_one_error(cnn, tmp_path):
    cwd, run, _, _ = cnn
    np.save(tmp_path / "five_channels.npy", np.zeros((2, 5, 28, 28), dtype=np.uint8))
    out = tmp_path / "never.csv"
    proc = run_cli(["predict", f"ckpt={run}", f"inputs={tmp_path / 'five_channels.npy'}", f"out={out}"], cwd)
    assert proc.returncode == 2
    assert "five_channels.npy holds a tensor of shape [2, 5, 28, 28], which model 'cnn' cannot take" in \
        " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr and not out.exists()


def test_a_regression_model_writes_its_predicted_values(tmp_path):
    proc = run_cli(["train", "model=mlp", "dataset=sine", "dataset.n_train=100", "dataset.n_test=20",
                    "dataset.length=8", "model.hidden=[8]", *TINY], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    inputs = torch.linspace(-1, 1, 3 * 8).view(3, 8, 1)
    (tmp_path / "seqs").mkdir()
    np.save(tmp_path / "seqs" / "seq.npy", inputs.numpy())
    (tmp_path / "seqs" / "notes.txt").write_text("not an input")
    proc = run_cli(["predict", f"ckpt={run}", f"inputs={tmp_path / 'seqs'}"], tmp_path)  # a folder of .npy files
    assert proc.returncode == 0, proc.stderr
    assert "ignored 1 other file(s)" in " ".join(proc.stdout.split())
    with open(run / "predictions.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["input", *(f"value_{i}" for i in range(8))]
    with torch.no_grad():
        expected = restored(run).parts.model.eval()(inputs).flatten(1)
    got = torch.tensor([[float(v) for v in row[1:]] for row in rows[1:]])
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    (["ckpt=x"], "which inputs?"),
    (["ckpt=x", "inputs=y", "topk=0"], "topk=0 is not a whole number of classes"),
    (["ckpt=x", "inputs=y", "format=xml"], "format=xml is not one of csv, json"),
])
def test_bad_options_are_refused_before_anything_loads(args, message):
    from trainctl.commands.predict import run_predict

    with pytest.raises(UserError, match=message):
        run_predict(args)


def test_missing_inputs_are_named(tmp_path):
    from trainctl.deploy.inputs import find_inputs

    with pytest.raises(UserError, match="does not exist"):
        find_inputs(str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="matches no image, tensor or IDX file"):
        find_inputs(str(tmp_path / "*.png"))
