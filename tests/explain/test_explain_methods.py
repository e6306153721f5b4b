"""The maps point where the model looks: a hand-made model that sees only the top-left quadrant of its input
gets its heatmaps there, from every CAM method and from saliency; and layers are found and checked."""

import pytest
import torch
from torch import nn

from trainctl.errors import UserError
from trainctl.explain import CAM_METHODS
from trainctl.explain.layers import cam_layer, feature_layer, kernel_layer
from trainctl.explain.methods import cam_heatmaps, feature_maps, saliency_heatmaps

H, W = 16, 24  # not square: a map drawn transposed would put its peak elsewhere


class Mask(nn.Module):
    """Zeroes every position outside the top-left quadrant of a feature map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.zeros_like(x)
        keep[..., : x.shape[2] // 2, : x.shape[3] // 2] = 1
        return x * keep


class TopLeft(nn.Module):
    """Scores computed from the top-left quadrant only, through a stride-2 conv, so the maps are coarser than
    the image and must be stretched back over it the right way round."""

    def __init__(self) -> None:
        super().__init__()
        self.focus = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), Mask())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        with torch.no_grad():  # positive evidence for class 0 wherever the focus layer fires
            self.focus[0].weight.fill_(0.2)
            self.focus[0].bias.fill_(0.1)
            self.head[2].weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4, [0.5, -0.5, 0.5, -0.5]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.focus(x))


@pytest.fixture
def model_and_inputs():
    torch.manual_seed(0)
    return TopLeft().eval(), torch.rand(3, 1, H, W)


def assert_top_left(maps: torch.Tensor) -> None:
    assert maps.shape == (3, H, W)
    assert 0.0 <= float(maps.min()) and float(maps.max()) == pytest.approx(1.0)
    for heatmap in maps:
        row, col = divmod(int(heatmap.argmax()), W)
        assert row < H // 2 and col < W // 2, (row, col)
        top_left = float(heatmap[: H // 2, : W // 2].sum())
        assert top_left > 0.9 * float(heatmap.sum())  # bilinear stretching blurs the quadrant's edge a little
        assert float(heatmap[H // 2 + 2 :, :].max()) == 0.0 and float(heatmap[:, W // 2 + 2 :].max()) == 0.0


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_every_cam_method_peaks_where_the_model_looks(model_and_inputs, method):
    model, inputs = model_and_inputs
    classes = torch.zeros(3, dtype=torch.long)
    assert_top_left(cam_heatmaps(model, inputs, classes, "focus", method))


def test_saliency_is_zero_where_no_pixel_reaches_the_score(model_and_inputs):
    model, inputs = model_and_inputs
    maps = saliency_heatmaps(model, inputs, torch.tensor([0, 1, 2]))
    assert_top_left(maps)
    # The conv's receptive field of the kept positions ends exactly at the quadrant's edge.
    assert float(maps[:, H // 2 :, :].abs().max()) == 0.0 and float(maps[:, :, W // 2 :].abs().max()) == 0.0


def test_maps_leave_the_weights_and_their_gradients_alone(model_and_inputs):
    model, inputs = model_and_inputs
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cam_heatmaps(model, inputs, torch.zeros(3, dtype=torch.long), "focus", "gradcam")
    saliency_heatmaps(model, inputs, torch.zeros(3, dtype=torch.long))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not model.focus[0]._forward_hooks  # torchcam's hooks are gone


def test_the_cam_layer_is_the_last_with_spatial_output_and_a_named_one_is_checked(model_and_inputs):
    model, inputs = model_and_inputs
    assert cam_layer(model, inputs, None, "model 'x'") == "focus.0"  # the last conv
    assert cam_layer(model, inputs, "focus", "model 'x'") == "focus"
    no_conv = nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(H * W // 4, 3))
    assert cam_layer(no_conv, inputs, None, "model 'y'") == "0"  # else the last with spatial output
    with pytest.raises(UserError, match=r"layer=focus\.9 is not a layer of the model 'x'; did you mean 'focus\.\d'\? "
                                        r"Layers with feature maps: focus\.0, focus\.1, focus\.2, focus$"):
        cam_layer(model, inputs, "focus.9", "model 'x'")
    with pytest.raises(UserError, match=r"layer=head\.0 \(AdaptiveAvgPool2d\) gives outputs of shape \(1, 4, 1, 1\), "
                                        r"not feature maps .*choose one of focus\.0, focus\.1, focus\.2, focus"):
        cam_layer(model, inputs, "head.0", "model 'x'")


def test_feature_maps_and_kernels_come_from_the_first_conv_by_default(model_and_inputs):
    model, inputs = model_and_inputs
    layer = feature_layer(model, inputs, None, "model 'x'")
    assert layer == "focus.0"
    maps = feature_maps(model, inputs, layer)
    assert maps.shape == (3, 4, H // 2, W // 2)
    assert torch.allclose(maps, model.focus[0](inputs))
    assert kernel_layer(model, None, "model 'x'") == ("focus.0", model.focus[0])
    with pytest.raises(UserError, match=r"layer=head\.2 is not a conv layer of the model 'x'\. Its conv layers: focus\.0$"):
        kernel_layer(model, "head.2", "model 'x'")


def test_a_feature_grid_wraps_many_channels_into_rows_of_16():
    from trainctl.explain.render import DPI, Caption, feature_grid

    pixels, maps = torch.rand(2, 1, 8, 8), torch.rand(2, 40, 4, 4)
    picture = feature_grid(pixels, maps, [Caption("a", "a", 0.9)] * 2, "title")
    height, width, _ = picture.rgb.shape
    assert width == 17 * DPI  # the image and 16 channels a row
    assert height == round((2 * 3 * 1.25 + 0.6) * DPI)  # 40 channels: 3 rows per sample


# ---- the original CAM (issue 27) --------------------------------------------------------------------------------
def gap_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


def test_cam_weighs_the_pooled_maps_by_the_last_linear_layers_row():
    from trainctl.explain.gap import gap_layers

    model, x = gap_model(), torch.rand(2, 1, 8, 8)
    layer, fc = gap_layers(model, x, "model 'mine'")
    assert (layer, fc) == ("1", "4")  # the ReLU's maps are what the pool averages
    maps = cam_heatmaps(model, x, torch.tensor([2, 2]), layer, "cam", fc)
    with torch.no_grad():
        raw = torch.einsum("c,nchw->nhw", model[4].weight[2], model[1](model[0](x)))
    for heat, cam in zip(maps, raw):  # the same order of positions: a monotonic rescaling of sum_c w_c A_c
        order = cam.relu().flatten().argsort(stable=True)
        assert torch.all(heat.flatten()[order].diff() >= -1e-6)
        assert heat.flatten().argmax() == cam.flatten().argmax()


def test_cam_finds_resnets_pooled_layer_and_refuses_a_flatten_head():
    import torchvision

    from trainctl.explain.gap import gap_layers

    resnet = torchvision.models.resnet18(num_classes=3).eval()
    assert gap_layers(resnet, torch.rand(1, 3, 32, 32), "model 'resnet'") == ("layer4", "fc")
    flat = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3)).eval()
    with pytest.raises(UserError, match=r"method=cam needs a model that ends in global average pooling followed by "
                                        r"one linear layer .* its last linear layer '2' reads '0' \(Conv2d\), not a "
                                        r"global average pool. Use method=gradcam"):
        gap_layers(flat, torch.rand(1, 1, 8, 8), "model 'cnn'")


def test_guided_backprop_keeps_only_positive_gradients_through_each_relu():
    """x → 1×1 conv (identity) → ReLU → flatten → linear (1, -1): the plain gradient is (1, -1); guided, the
    ReLU passes back only the positive part, (1, 0). The ReLU is left as it was, in place and without hooks."""
    from trainctl.explain.guided import guided_relus, input_gradients

    relu = nn.ReLU(inplace=True)
    model = nn.Sequential(nn.Conv2d(2, 2, 1, bias=False), relu, nn.Flatten(), nn.Linear(2, 1, bias=False)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        model[3].weight.copy_(torch.tensor([[1.0, -1.0]]))
    x, classes = torch.ones(1, 2, 1, 1), torch.zeros(1, dtype=torch.long)
    assert input_gradients(model, x, classes).flatten().tolist() == [1.0, -1.0]
    with guided_relus(model, "model 'toy'"):
        assert input_gradients(model, x, classes).flatten().tolist() == [1.0, 0.0]
    assert relu.inplace and not relu._backward_hooks
    assert input_gradients(model, x, classes).flatten().tolist() == [1.0, -1.0]


def test_guided_backprop_peaks_where_the_model_looks_and_needs_relu_modules(model_and_inputs):
    from trainctl.explain.methods import guided_heatmaps

    model, inputs = model_and_inputs
    assert_top_left(guided_heatmaps(model, inputs, torch.zeros(3, dtype=torch.long), "model 'toy'"))
    gelu = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Flatten(), nn.LazyLinear(3)).eval()
    gelu(inputs)
    with pytest.raises(UserError, match=r"^method=guided needs ReLU activations \(nn.ReLU layers\), and the model "
                                        r"'toy' has none: use method=saliency"):
        guided_heatmaps(gelu, inputs, torch.zeros(3, dtype=torch.long), "model 'toy'")
