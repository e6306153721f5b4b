"""Model shapes and the sequence models' two modes."""

import pytest
import torch
from omegaconf import OmegaConf

from trainctl.components import models
from trainctl.components import build_model
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.config.compose import compose
from conftest import NO_SYSTEM_DATA, run_cli, run_dirs

IMAGES = [DataSpec((1, 28, 28), 10), DataSpec((3, 32, 32), 10)]


@pytest.mark.parametrize("spec", IMAGES, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("overrides", [
    ["model=vgg"], ["model=vgg", "model.preset=vgg16"], ["model=vgg", "model.layers=[8,M,16,M]"],
    ["model=resnet"], ["model=resnet", "model.arch=resnet34", "model.small_input=false"],
    ["model=cnn"], ["model=cnn", "model.batch_norm=true"], ["model=lenet", "model.batch_norm=true"], ["model=lenet"],
    ["model=mlp"], ["model=lstm"], ["model=gru", "model.bidirectional=true"],
], ids=lambda o: " ".join(o))
def test_image_models_give_one_logit_per_class(spec, overrides):
    model = build_model(compose(overrides).model, spec)
    assert model(torch.zeros(2, *spec.input_shape)).shape == (2, 10)


def test_torchvision_model_takes_grey_images():
    cfg = compose(["model=torchvision", "model.arch=mobilenet_v3_small"]).model
    model = build_model(cfg, DataSpec((1, 32, 32), 7))
    assert model.eval()(torch.zeros(2, 1, 32, 32)).shape == (2, 7)


def test_unknown_torchvision_arch_suggests_a_name():
    cfg = compose(["model=torchvision", "model.arch=resnet19"]).model
    with pytest.raises(UserError, match="model.arch=resnet19: unknown torchvision model; did you mean 'resnet18'"):
        build_model(cfg, DataSpec((3, 32, 32), 10))


@pytest.mark.parametrize(("arch", "kind"), [("fasterrcnn_resnet50_fpn", "detection"), ("raft_small", "optical flow"),
                                            ("deeplabv3_resnet50", "segmentation"), ("r3d_18", "video")])
def test_torchvision_models_other_than_classifiers_are_refused(arch, kind):
    cfg = compose(["model=torchvision", f"model.arch={arch}"]).model
    with pytest.raises(UserError, match=f"^torchvision model '{arch}' is a {kind} model, not an image classifier"):
        build_model(cfg, DataSpec((3, 32, 32), 10))


def test_pretrained_weights_that_cannot_be_fetched_give_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: the weights would need a download
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(api.WeightsEnum, "get_state_dict", offline)
    cfg = compose(["model=resnet", "model.weights=DEFAULT"]).model
    with pytest.raises(UserError, match=r"cannot load pretrained weights 'DEFAULT' for resnet18: .*unreachable"):
        build_model(cfg, DataSpec((3, 32, 32), 10))


def test_vgg_rejects_too_many_pools():
    cfg = compose(["model=vgg", "model.layers=[8,M,M,M,M,M,M]"]).model
    message = (r"^model 'vgg' cannot take 1x28x28 inputs: layer pool5 \(MaxPool2d 2x2\) shrinks its 1x1 input to 0x0. "
               r"Fix: remove some 'M' pools from model.layers, or use larger images. "
               r"The smallest input it takes is 64x64")
    with pytest.raises(UserError, match=message):
        build_model(cfg, DataSpec((1, 28, 28), 10))


# Models on images too small for them: the layer named, and the smallest size given is exactly the smallest.
TOO_SMALL = [
    (["model=lenet"], (3, 1, 1), r"layer pool1 \(MaxPool2d 2x2\) shrinks its 1x1 input to 0x0", 12),
    (["model=lenet"], (1, 10, 10), r"layer pool2 \(MaxPool2d 2x2\) shrinks its 1x1 input to 0x0", 12),
    (["model=vgg"], (3, 8, 8), r"layer pool4 \(MaxPool2d 2x2\) shrinks .* fewer 'M' pools than preset vgg11's", 16),
    (["model=cnn", "model.kernel_size=29"], (1, 28, 28),
     r"^model.kernel_size=29 is larger than the 28x28 input that layer conv1 \(Conv2d 29x29\) of model 'cnn' sees on "
     r"1x28x28 inputs: lower model.kernel_size to at most 28, or use larger images.", 115),
    (["model=cnn", "model.kernel_size=9"], (1, 28, 28), "the 7x7 input that layer conv2 .* at most 7", 35),
    (["model=cnn"], (1, 12, 30), "the 3x7 input that layer conv2", 19),
]


@pytest.mark.parametrize(("overrides", "shape", "message", "smallest"), TOO_SMALL, ids=lambda v: str(v))
def test_too_small_inputs_name_the_layer_and_the_smallest_size(overrides, shape, message, smallest):
    cfg = compose(overrides).model
    with pytest.raises(UserError, match=f"{message}.* The smallest input it takes is {smallest}x{smallest} "
                                        rf"\(dataset.image_size=\[{smallest},{smallest}\] for an image folder\)"):
        build_model(cfg, DataSpec(shape, 10))
    with pytest.raises(UserError, match=f"smallest input it takes is {smallest}x{smallest}"):
        build_model(cfg, DataSpec((shape[0], smallest - 1, smallest - 1), 10))
    model = build_model(cfg, DataSpec((shape[0], smallest, smallest), 10))
    assert model.eval()(torch.zeros(1, shape[0], smallest, smallest)).shape == (1, 10)


def test_torchvision_model_refuses_a_size_it_cannot_take():
    cfg = compose(["model=torchvision", "model.arch=vit_b_16"]).model
    with pytest.raises(UserError, match=r"'vit_b_16' cannot take \(3, 32, 32\) inputs \(Wrong image height"):
        build_model(cfg, DataSpec((3, 32, 32), 10))


@pytest.mark.parametrize("layers", ["[]", "[M]"])
def test_vgg_needs_a_conv_layer(layers):
    with pytest.raises(UserError, match=r"^model.layers=\[.*\] has no conv layer: .* model.layers=null"):
        build_model(compose(["model=vgg", f"model.layers={layers}"]).model, DataSpec((1, 28, 28), 10))


def test_mlp_without_hidden_layers_is_a_linear_model():
    model = build_model(compose(["model=mlp", "model.hidden=[]"]).model, DataSpec((1, 28, 28), 10))
    assert [type(m).__name__ for m in model] == ["Flatten", "Linear"] and model[1].in_features == 784


@pytest.mark.parametrize(("overrides", "keys"), [
    (["model=mlp", "model.hidden=[100000000]"], "model.hidden"),
    (["model=lstm", "model.hidden_size=10000000"], "model.hidden_size or model.num_layers"),
    (["model=cnn", "model.channels=[100000,100000]"], "model.channels"),
])
def test_models_too_large_for_memory_are_refused_before_allocating(monkeypatch, overrides, keys):
    monkeypatch.setattr(models, "available_bytes", lambda: 8 * 10**9)
    message = (rf"^model '\w+' does not fit in memory: its [\d,]+ parameters take [\d.]+ [GTP]B, training needs "
               rf"about 4x that, and 8.0 GB is free. Fix: lower {keys}")
    with pytest.raises(UserError, match=message):
        build_model(compose(overrides).model, DataSpec((1, 28, 28), 10))


def test_allocation_failures_while_building_name_the_size_keys(monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(models, "available_bytes", lambda: None)  # no estimate: only the failure tells
    monkeypatch.setattr(torch.nn.Linear, "__init__", no_memory)
    with pytest.raises(UserError, match="^model 'mlp' does not fit in memory: .*can't allocate memory. Fix: lower "
                                        "model.hidden"):
        build_model(compose(["model=mlp"]).model, DataSpec((1, 28, 28), 10))


def test_sizing_a_model_first_draws_no_random_numbers(monkeypatch):
    cfg, spec = compose(["model=lstm"]).model, DataSpec((1, 28, 28), 10)
    torch.manual_seed(0)
    sized = build_model(cfg, spec)
    monkeypatch.setattr(models, "available_bytes", lambda: None)  # no sizing pass
    torch.manual_seed(0)
    unsized = build_model(cfg, spec)
    assert all(torch.equal(a, b) for a, b in zip(sized.state_dict().values(), unsized.state_dict().values()))


def test_values_torch_refuses_are_user_errors_naming_the_settings():
    cfg = OmegaConf.create({"name": "lstm", "hidden_size": 0, "num_layers": 1, "bidirectional": False, "dropout": 0.0})
    with pytest.raises(UserError, match=r"^model 'lstm' cannot be built with model.hidden_size=0, .*: hidden_size "):
        build_model(cfg, DataSpec((1, 28, 28), 10))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_sequence_models_regress_every_time_step(kind):
    spec = DataSpec((50, 1), 0, "regression", (), (50, 1))
    model = build_model(compose([f"model={kind}", "model.num_layers=2", "model.dropout=0.1"]).model, spec)
    assert model(torch.zeros(3, 50, 1)).shape == (3, 50, 1)


def test_mlp_regresses_the_target_shape():
    spec = DataSpec((50, 1), 0, "regression", (), (50, 1))
    assert build_model(compose(["model=mlp"]).model, spec)(torch.zeros(3, 50, 1)).shape == (3, 50, 1)


def test_mlp_options_change_the_network():
    cfg = compose(["model=mlp", "model.hidden=[64,32]", "model.activation=gelu", "model.dropout=0.2",
                   "model.batch_norm=true"]).model
    names = [type(m).__name__ for m in build_model(cfg, DataSpec((1, 28, 28), 10))]
    assert names == ["Flatten", "Linear", "BatchNorm1d", "GELU", "Dropout", "Linear", "BatchNorm1d", "GELU",
                     "Dropout", "Linear"]


def test_classifier_on_a_regression_task_is_refused():
    spec = DataSpec((50, 1), 0, "regression", (), (50, 1))
    with pytest.raises(UserError, match="model 'cnn' is a classifier but the dataset is a regression task"):
        build_model(OmegaConf.create({"name": "cnn", "channels": [16, 32], "kernel_size": 5}), spec)


@pytest.mark.slow
def test_the_cli_refuses_a_model_its_images_cannot_feed(tmp_path, fake_fashion):
    data = ["dataset=fashionmnist", f"dataset.root={fake_fashion}", NO_SYSTEM_DATA, "device=cpu"]
    proc = run_cli(["train", "model=cnn", "model.kernel_size=99", *data], tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert "error: model.kernel_size=99 is larger than the 28x28 input" in " ".join(proc.stderr.split())
    assert run_dirs(tmp_path) == []


def test_layer_outputs_of_a_batch_count_towards_the_memory_a_model_needs():
    from trainctl.components.models import activation_elements, check_fits

    build = lambda: torch.nn.Sequential(torch.nn.Linear(2, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 2))  # noqa: E731
    with torch.device("meta"):
        assert activation_elements(build(), (2,)) == 1000 + 1000 + 2
    check_fits("mlp", build, available=10**9, input_shape=(2,), batch_size=32)  # about 0.3 MB per batch: fits
    with pytest.raises(UserError, match="does not fit in memory at trainer.batch_size=100000: its layer outputs"):
        check_fits("mlp", build, available=10**9, input_shape=(2,), batch_size=100_000)  # about 1.6 GB per batch
