"""The maps: class activation maps from torchcam, input-gradient saliency, a layer's activations, conv kernels.

CAMs come from torchcam rather than being re-derived here: its extractors handle the hooks, the gradient
bookkeeping and the variants (Grad-CAM++, XGrad-CAM, Layer-CAM, Score-CAM). Saliency is a single gradient, which
works for any differentiable model, so it is the choice for models without conv layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainctl.explain import CAM_METHODS

def cam_heatmaps(model: nn.Module, inputs: torch.Tensor, classes: torch.Tensor, layer: str,
                 method: str, fc_layer: str | None = None) -> torch.Tensor:
    """[N, H, W] maps in [0, 1] at the input's resolution: torchcam's `method` on `layer`, for each sample's
    class in `classes` (the original CAM also takes the final linear layer, `fc_layer`). The model must be in
    eval mode."""
    from torchcam import methods as torchcam_methods

    extractor_class = getattr(torchcam_methods, CAM_METHODS[method][0])
    extra = {"fc_layer": fc_layer} if method == "cam" else {}
    # An input that requires grad keeps the graph connected even when the layers before `layer` are frozen.
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad(), extractor_class(model, target_layer=layer, input_shape=tuple(x.shape[1:]),
                                              **extra) as cam:
        scores = model(x)
        [maps] = cam(class_idx=classes.tolist(), scores=scores)
    return _to_input_size(maps.detach().float(), tuple(inputs.shape[2:]))


def saliency_heatmaps(model: nn.Module, inputs: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """[N, H, W] input-gradient saliency in [0, 1]: |d score / d pixel|, the largest over the channels, for each
    sample's class (Simonyan et al. 2014). Samples do not mix in eval mode, so one backward pass gives all."""
    from trainctl.explain.guided import input_gradients

    return normalise(input_gradients(model, inputs, classes).abs().amax(dim=1).float())


def guided_heatmaps(model: nn.Module, inputs: torch.Tensor, classes: torch.Tensor, model_name: str) -> torch.Tensor:
    """[N, H, W] guided backpropagation in [0, 1]: the positive part of the guided input gradient, the largest
    over the channels (what raises the class's score)."""
    from trainctl.explain.guided import guided_relus, input_gradients

    with guided_relus(model, model_name):
        gradient = input_gradients(model, inputs, classes)
    return normalise(gradient.clamp(min=0).amax(dim=1).float())


def feature_maps(model: nn.Module, inputs: torch.Tensor, layer: str) -> torch.Tensor:
    """[N, C, h, w]: what `layer` outputs for `inputs` (a forward hook, no gradients)."""
    module = dict(model.named_modules())[layer]
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _, __, out: captured.append(out.detach()))
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        handle.remove()
    return captured[-1].float()


def kernels(conv: nn.Conv2d) -> torch.Tensor:
    """[out, in, kh, kw]: the conv layer's weights, in host memory for drawing."""
    return conv.weight.detach().float().cpu()


def _to_input_size(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """A coarse [N, h, w] map stretched over the image (bilinear, as CAM papers draw them), back in [0, 1]."""
    if tuple(maps.shape[1:]) != size:
        maps = F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return normalise(maps.nan_to_num(0.0))


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1]; an all-zero map (nothing found) stays zero."""
    flat = maps.flatten(1)
    low = flat.amin(1).view(-1, 1, 1)
    span = (flat.amax(1).view(-1, 1, 1) - low).clamp_min(1e-12)
    return (maps - low) / span
