"""`trainctl summary`: the model's table from the config alone, with no data on disk; the dataset shapes it
assumes are the ones the data sources really give."""

import re

import pytest
from omegaconf import OmegaConf

from conftest import NO_SYSTEM_DATA, run_cli
from trainctl.cli import main
from trainctl.components import build_dataset, build_model
from trainctl.config.compose import compose
from trainctl.data.shapes import PLACEHOLDER_CLASSES, spec_from_config
from trainctl.errors import UserError


def total_params(text: str) -> int:
    return int(re.search(r"^Total params: ([\d,]+)$", text, re.M).group(1).replace(",", ""))


@pytest.mark.parametrize("overrides, shape, classes", [
    (["dataset=blobs"], (2,), 2),
    (["dataset=sine", "dataset.length=20"], (20, 1), 0),
    (["dataset=fashionmnist", NO_SYSTEM_DATA, "dataset.root={fashion}"], (1, 28, 28), 10),
    (["dataset=cifar10", NO_SYSTEM_DATA, "dataset.root={cifar}"], (3, 32, 32), 10),
])
def test_the_spec_from_the_config_is_the_one_the_data_gives(overrides, shape, classes, fake_fashion, fake_cifar):
    cfg = compose([o.format(fashion=fake_fashion, cifar=fake_cifar) for o in overrides])
    spec, notes = spec_from_config(cfg.dataset)
    real = build_dataset(cfg.dataset, cfg.seed).spec
    assert (spec.input_shape, spec.num_classes) == (real.input_shape, real.num_classes) == (shape, classes)
    assert (spec.task, spec.target_shape) == (real.task, real.target_shape)
    assert notes == []


def test_imagefolder_takes_its_size_and_channels_from_the_config_and_says_its_classes_are_a_placeholder(
        fake_images):
    cfg = compose(["dataset=imagefolder", f"dataset.root={fake_images}", "dataset.grayscale=true",
                   "dataset.image_size=[24,16]"])
    spec, [note] = spec_from_config(cfg.dataset)
    assert spec.input_shape == build_dataset(cfg.dataset, cfg.seed).spec.input_shape == (1, 24, 16)
    assert spec.num_classes == PLACEHOLDER_CLASSES and "placeholder 2 classes" in note
    assert spec_from_config(compose(["dataset=imagefolder"]).dataset)[0].input_shape == (3, 32, 32)


def test_a_dataset_that_is_not_built_in_is_refused_by_name():
    with pytest.raises(UserError, match=r"`trainctl summary` needs a built-in dataset .*dataset 'mydata' is unknown"):
        spec_from_config(OmegaConf.create({"name": "mydata"}))


def test_summary_prints_the_table_and_the_placeholder_note(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "model=lstm", "dataset=imagefolder", "dataset.root=nowhere"]) == 0
    out = capsys.readouterr().out
    assert "LSTM (rnn)" in out and "input [1, 3, 32, 32]" in out
    assert "Note: imagefolder's classes are its folders" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_vgg_on_cifar10_needs_no_data(tmp_path):
    proc = run_cli(["summary", "model=vgg", "dataset=cifar10", NO_SYSTEM_DATA], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    expected = sum(p.numel() for p in build_model(compose(["model=vgg"]).model,
                                                  spec_from_config(compose(["dataset=cifar10"]).dataset)[0])
                   .parameters())
    assert total_params(proc.stdout) == expected
    assert "[1, 3, 32, 32]" in proc.stdout and "Mult-adds (MACs) per sample: " in proc.stdout
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written


@pytest.mark.slow
def test_cnn_total_matches_a_hand_count(tmp_path):
    proc = run_cli(["summary", "model=cnn", "dataset=fashionmnist", "model.channels=[8,16]"], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    conv1 = 1 * 8 * 5 * 5 + 8  # 28x28 -> 14x14 (stride 2), pooled to 7x7
    conv2 = 8 * 16 * 5 * 5 + 16  # 7x7 kept (padding 2)
    head = 16 * 7 * 7 * 10 + 10
    assert total_params(proc.stdout) == conv1 + conv2 + head == 11_274
    assert "[1, 16, 7, 7]" in proc.stdout


@pytest.mark.slow
def test_model_options_show_in_the_table(tmp_path):
    proc = run_cli(["summary", "model=cnn", "model.dropout=0.3", "model.activation=elu", "model.norm=group",
                    "model.pool=avg", "model.dropout2d=0.1", "dataset=fashionmnist"], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^├─(\w+) \((\w+)\)", proc.stdout, re.M)
    assert rows == [("Conv2d", "conv1"), ("GroupNorm", "gn1"), ("ELU", "elu1"), ("Dropout2d", "dropout1"),
                    ("AvgPool2d", "pool1"), ("Conv2d", "conv2"), ("GroupNorm", "gn2"), ("ELU", "elu2"),
                    ("Dropout2d", "dropout2"), ("Flatten", "flatten"), ("Dropout", "dropout3"), ("Linear", "fc")]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (["model.batch_norm=true", "model.norm=layer"],
     "model.norm=layer contradicts model.batch_norm=true, which means norm=batch. Fix: set model.batch_norm=false"),
    (["model=lenet", "model.norm=group", "model.norm_groups=4"],
     "model.norm_groups=4 does not divide the 6 channels of lenet's conv 1"),
    (["model=mlp", "model.norm=group"], "model.norm='group' is not allowed: choose one of none, batch, layer"),
])
def test_bad_model_options_exit_2_with_one_message_naming_the_key(tmp_path, args, message):
    proc = run_cli(["summary", *args], tmp_path, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert message in " ".join(proc.stderr.split()) and proc.stderr.count("error:") == 1
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_bad_override_exits_2_with_one_message(tmp_path):
    proc = run_cli(["summary", "model.foo=1"], tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "model.foo is not a setting of model" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert list(tmp_path.iterdir()) == []


DRIVER = """
import json, sys
from trainctl.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(("args", "code"), [(["summary", "--help"], 0), (["summary", "optimizer.lr=-1"], 2),
                                            (["summary", "model=cnnn"], 2)])
def test_help_and_config_errors_answer_without_torch(tmp_path, args, code):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"code": code, "torch": False}, proc.stderr


def test_params_lists_every_parameter_by_name_with_its_shape(tmp_path):
    """`--params`: model.named_parameters(), as the tutorial prints them, with what model.freeze keeps still."""
    proc = run_cli(["summary", "--params", "model=cnn", "model.channels=[4,8]", "model.freeze=[conv1]"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in re.split(r"parameter +shape", proc.stdout)[1].splitlines()[1:] if line.strip()]
    model = build_model(compose(["model=cnn", "model.channels=[4,8]"]).model, spec_from_config(compose([]).dataset)[0])
    assert [r[0] for r in rows] == [name for name, _ in model.named_parameters()]
    assert [r[1] for r in rows] == ["x".join(map(str, p.shape)) for _, p in model.named_parameters()]
    assert [r[3] for r in rows] == ["no", "no", "yes", "yes", "yes", "yes"]
    assert [r[0] for r in rows] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]
    assert "Conv2d (conv1)" in proc.stdout and "Linear (fc)" in proc.stdout  # the layer table names them too
