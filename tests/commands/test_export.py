"""`trainctl export`: ONNX (checked in onnxruntime, with the fallback exporter), pt2 and safetensors files that
reproduce the checkpoint's model on its test data, with and without the preprocessing inside; a model no exporter
can follow is one error naming the format that works."""

import json
import textwrap

import pytest
import torch

from conftest import NO_SYSTEM_DATA, make_idx_dataset, run_cli, run_dirs
from trainctl.errors import UserError

pytestmark = pytest.mark.slow

TINY = ["trainer.epochs=1", "trainer.max_steps_per_epoch=4", "trainer.progress=false",
        "tensorboard.images=false", "tensorboard.figures=false"]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """A tiny cnn trained on generated Fashion-MNIST files; its model and test images, in process."""
    from trainctl.commands.from_checkpoint import restore_run
    from trainctl.data.idx import read_idx

    cwd = tmp_path_factory.mktemp("export")
    data = make_idx_dataset(cwd / "data", n_train=300, n_test=100)
    proc = run_cli(["train", "model=cnn", f"dataset.root={data}", NO_SYSTEM_DATA, *TINY], cwd)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(cwd)
    restored = restore_run(str(run), "cpu", [], False)
    images = read_idx(data / "t10k-images-idx3-ubyte.gz").unsqueeze(1)  # raw uint8 [N, 1, 28, 28]
    return cwd, run, restored, images


def expected_logits(cnn, images):
    _, _, restored, _ = cnn
    with torch.no_grad():
        return restored.parts.model.eval()(restored.data.eval_transform(images, None))


def said(proc):
    return " ".join((proc.stdout + proc.stderr).split())


def test_onnx_takes_raw_pixels_and_reproduces_pytorch_in_onnxruntime(cnn):
    import onnx
    import onnxruntime

    cwd, run, restored, images = cnn
    proc = run_cli(["export", f"ckpt={run}", "format=onnx"], cwd)
    assert proc.returncode == 0, proc.stderr
    text = said(proc)
    assert "ONNX by the torch.export-based exporter" in text
    assert "onnxruntime vs PyTorch on 64 test samples" in text and "max |difference|" in text
    path = run / "export" / "model.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [given] = session.get_inputs()
    for batch in (images, images[:3]):  # any batch size; uint8 pixels straight from the dataset
        logits = torch.from_numpy(session.run(None, {given.name: batch.numpy()})[0])
        assert torch.allclose(logits, expected_logits(cnn, batch), atol=1e-4)
    graph = onnx.load(str(path))
    weights = sorted(init.name.split(".", init.name.count(".") - 1)[-1] for init in graph.graph.initializer
                     if init.name.endswith((".weight", ".bias")))
    assert {"conv1.weight", "conv2.weight", "fc.weight"} <= set(weights), weights  # the layers' names, not indices
    props = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(props["trainctl.classes"]) == list(restored.data.spec.class_names)
    assert json.loads(props["trainctl.preprocess"])["mean"] == [0.2860]


def test_the_older_onnx_exporter_is_used_and_said_when_the_current_one_fails(cnn, tmp_path):
    cwd, run, _, images = cnn
    hidden = tmp_path / "hide" / "onnxscript"  # the current exporter needs onnxscript: make it unimportable
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('onnxscript hidden by the test')\n")
    out = tmp_path / "float.onnx"
    proc = run_cli(["export", f"ckpt={run}", "format=onnx", "dtype=float32", f"out={out}"], cwd,
                   PYTHONPATH=str(tmp_path / "hide"))
    assert proc.returncode == 0, proc.stderr
    text = said(proc)
    assert "the torch.export-based ONNX exporter failed on model 'cnn' (onnxscript hidden by the test)" in text
    assert "ONNX by the TorchScript-based exporter (dynamo=False)" in text
    assert "raw float32 images [N, 1, 28, 28] in [0, 1]" in text
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    scaled = images[:5].float().div(255)
    logits = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: scaled.numpy()})[0])
    assert torch.allclose(logits, expected_logits(cnn, images[:5]), atol=1e-4)


def test_pt2_without_preprocessing_takes_the_normalised_tensor(cnn):
    cwd, run, restored, images = cnn
    proc = run_cli(["export", f"ckpt={run}", "format=pt2", "preprocess=false"], cwd)
    assert proc.returncode == 0, proc.stderr
    assert "the reloaded program vs PyTorch on 64 test samples" in said(proc)
    assert "float32 images [N, 1, 28, 28], normalised as in training" in said(proc)
    program = torch.export.load(str(run / "export" / "model.pt2")).module()
    normalised = restored.data.eval_transform(images[:7], None)
    with torch.no_grad():
        assert torch.allclose(program(normalised), expected_logits(cnn, images[:7]), atol=1e-5)


def test_pt2_keeps_only_its_example_batch_not_the_whole_test_split(cnn, tmp_path):
    import zipfile

    cwd, run, _, images = cnn
    out = tmp_path / "model.pt2"
    proc = run_cli(["export", f"ckpt={run}", "format=pt2", f"out={out}"], cwd)
    assert proc.returncode == 0, proc.stderr
    sizes = {i.filename.split("/", 1)[-1]: i.file_size for i in zipfile.ZipFile(out).infolist()}
    [inputs] = [size for name, size in sizes.items() if name.startswith("data/sample_inputs/")]
    assert 64 * 28 * 28 <= inputs < images.shape[0] * 28 * 28  # 64 uint8 images, not all 100 of the split


def test_safetensors_with_the_json_that_rebuilds_the_model(cnn, tmp_path):
    from trainctl.deploy.weights import load_model

    cwd, run, restored, images = cnn
    out = tmp_path / "weights" / "cnn.safetensors"
    proc = run_cli(["export", f"ckpt={run}", "format=safetensors", f"out={out}"], cwd)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["model"]["name"] == "cnn" and meta["input_shape"] == [1, 28, 28]
    assert meta["classes"] == list(restored.data.spec.class_names)
    assert meta["preprocess"]["mean"] == [0.2860] and meta["preprocess"]["std"] == [0.3530]
    model = load_model(str(out))  # a str path, as the README calls it
    for name, tensor in restored.parts.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    with torch.no_grad():
        assert torch.equal(model(restored.data.eval_transform(images[:4], None)), expected_logits(cnn, images[:4]))


ROW_RNN = '''
    import torch
    from torch import nn


    class RowRNN(nn.Module):
        """A GRU cell over image rows that stops at the first blank row: a loop on tensor values."""

        def __init__(self, input_shape, num_classes, hidden=8):
            super().__init__()
            self.cell = nn.GRUCell(input_shape[0] * input_shape[2], hidden)
            self.head = nn.Linear(hidden, num_classes)

        def forward(self, x):
            rows = x.permute(0, 2, 1, 3).flatten(2)
            h = rows.new_zeros(rows.shape[0], self.cell.hidden_size)
            for t in range(rows.shape[1]):
                if bool((rows[:, t] < -10).all()):
                    break
                h = self.cell(rows[:, t], h)
            return self.head(h)
'''


def test_a_recurrent_model_no_exporter_can_follow_is_one_error_naming_safetensors(tmp_path):
    (tmp_path / "rowrnn.py").write_text(textwrap.dedent(ROW_RNN))
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "model" / "rowrnn.yaml").write_text("_target_: rowrnn.RowRNN\n")
    data = make_idx_dataset(tmp_path / "data", n_train=120, n_test=20)
    env = {"PYTHONPATH": str(tmp_path)}
    proc = run_cli(["train", "-cd", "myconf", "model=rowrnn", f"dataset.root={data}", NO_SYSTEM_DATA, *TINY,
                    "trainer.max_steps_per_epoch=1"], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    proc = run_cli(["export", f"ckpt={run}", "format=onnx", "trust_targets=true"], tmp_path, **env)
    assert proc.returncode == 2
    text = said(proc)
    assert "neither ONNX exporter can export model 'rowrnn.RowRNN' faithfully" in text
    assert "the TorchScript trace would be wrong for other inputs" in text and "Use format=safetensors" in text
    proc = run_cli(["export", f"ckpt={run}", "format=pt2", "trust_targets=true"], tmp_path, **env)
    assert proc.returncode == 2
    assert "torch.export cannot export model 'rowrnn.RowRNN'" in said(proc) and "format=safetensors" in said(proc)
    assert "def forward" not in proc.stderr and "Traceback" not in proc.stderr  # no graph dump, one line
    assert not (run / "export").exists()


def test_a_difference_beyond_the_tolerance_fails():
    from trainctl.deploy.export import compare

    model = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    agreement = compare(model, lambda v: model(v).detach() + 1e-6, x, 1e-4, True, "runtime")
    assert agreement.max_difference == pytest.approx(1e-6, rel=0.1) and agreement.same_top1 == 4
    with pytest.raises(UserError, match="runtime and PyTorch disagree .* beyond the tolerance"):
        compare(model, lambda v: model(v).detach() + 1e-2, x, 1e-4, True, "runtime")


def test_a_missing_runtime_names_the_extra():
    from trainctl.deploy.export import require

    with pytest.raises(UserError, match=r'needs the no_such_runtime_xyz package: pip install "trainctl\[export\]"'):
        require("no_such_runtime_xyz", what="format=onnx")


@pytest.mark.parametrize(("args", "message"), [
    (["ckpt=x", "format=tflite"], "format=tflite is not one of onnx, pt2, safetensors"),
    (["ckpt=x", "preprocess=maybe"], "preprocess=maybe is not a boolean"),
    (["ckpt=x", "tolerance=-1"], "tolerance=-1 is not a positive number"),
    (["ckpt=x", "format=safetensors", "dtype=uint8"], "dtype= sets the raw-image input"),
])
def test_bad_options_are_refused_before_anything_loads(args, message):
    from trainctl.commands.export import run_export

    with pytest.raises(UserError, match=message):
        run_export(args)

