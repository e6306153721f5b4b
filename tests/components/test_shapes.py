import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from trainctl.components import build_model
from trainctl.components.shapes import stack_shapes
from trainctl.data.splits import DataSpec

IMAGES = DataSpec(input_shape=(1, 28, 28), num_classes=10)
ODD_IMAGES = DataSpec(input_shape=(3, 29, 33), num_classes=4)


def forward_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Each leaf layer's per-sample output shape, from a real forward pass."""
    shapes: list[tuple[int, ...]] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:]))) for m in leaves]
    with torch.no_grad():
        model.eval()(torch.zeros(2, *input_shape))
    for hook in hooks:
        hook.remove()
    return shapes


@pytest.mark.parametrize("spec", [IMAGES, ODD_IMAGES], ids=["28x28", "3x29x33"])
@pytest.mark.parametrize("model", [
    {"name": "mlp", "hidden": [16, 8], "norm": "layer", "dropout": 0.1},
    {"name": "cnn", "channels": [8, 16, 8], "kernel_size": 3, "norm": "group", "pool": "avg", "dropout2d": 0.1},
    {"name": "cnn", "channels": [8], "kernel_size": 5, "norm": "instance", "activation": "elu"},
    {"name": "lenet", "norm": "batch", "activation": "gelu"},
    {"name": "vgg", "layers": [8, "M", 16, 16, "M", 32], "hidden": 12, "activation": "silu"},
])
def test_the_formula_gives_every_builtin_layers_real_output_shape(model, spec):
    built = build_model(OmegaConf.create(model), spec)
    assert stack_shapes(built, spec.input_shape) == forward_shapes(built, spec.input_shape)


@pytest.mark.parametrize("layer, shape", [
    (nn.Conv2d(3, 4, 3, stride=(2, 3), padding=(1, 0), dilation=2), (3, 17, 20)),
    (nn.Conv2d(3, 4, 3, padding="same"), (3, 9, 9)),
    (nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 10, 11)),
    (nn.AvgPool2d((2, 3), ceil_mode=True), (2, 7, 7)),
    (nn.AdaptiveMaxPool2d((2, 5)), (2, 9, 9)),
    (nn.Flatten(2), (3, 4, 5)),
    (nn.Flatten(-2, -1), (3, 4, 5)),
    (nn.Unflatten(1, (2, 6)), (12,)),
])
def test_the_formula_follows_torch_for_strides_padding_and_ceil_mode(layer, shape):
    model = nn.Sequential(layer)
    assert stack_shapes(model, shape) == forward_shapes(model, shape)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


@pytest.mark.parametrize("model", [
    nn.Sequential(Residual()),  # a container that is no plain stack: its forward could do anything
    nn.Sequential(nn.LSTM(4, 4)),  # a layer the formula does not know
    nn.Sequential(nn.Linear(3, 2)),  # the input does not fit: the forward pass will say so
])
def test_what_the_formula_cannot_vouch_for_is_left_to_a_forward_pass(model):
    assert stack_shapes(model, (4,)) is None


def test_building_a_model_for_inference_leaves_torchs_compiler_unimported():
    """eval, predict, export and summary build the model only: sizing it must not pull in torch._dynamo (about
    2 s of CPU at every start), which a forward pass on the meta device does."""
    code = ("import sys; from omegaconf import OmegaConf; from trainctl.components import build_model; "
            "from trainctl.data.splits import DataSpec; "
            "build_model(OmegaConf.create({'name': 'cnn', 'channels': [8, 16], 'kernel_size': 3, 'norm': 'batch'}), "
            "DataSpec(input_shape=(1, 28, 28), num_classes=10), batch_size=64); "
            "print(sorted(m for m in sys.modules if m.startswith('torch._dynamo'))[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
