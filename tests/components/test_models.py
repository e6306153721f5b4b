"""Model shapes and the sequence models' two modes."""

import pytest
import torch
from omegaconf import OmegaConf

from trainctl.components.models import build_model
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.config.compose import compose



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
    with pytest.raises(UserError, match="unknown torchvision model 'resnet19'; did you mean 'resnet18'"):
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
    with pytest.raises(UserError, match="more 'M' pools than a 28px image allows"):
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
