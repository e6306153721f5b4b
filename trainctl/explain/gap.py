"""Where the original CAM applies (Zhou et al. 2016): a model whose last linear layer reads the global average of
a layer's feature maps, so that layer's maps weighted by the linear layer's row for a class are the class's
activation map. Found by one forward pass with hooks: the last `nn.Linear` to run must take the output of an
adaptive average pool to 1x1 (through flatten, dropout or identity only), and its output must be the model's."""

from __future__ import annotations

import torch
from torch import nn

from trainctl.errors import UserError

PASS_THROUGH = (nn.Flatten, nn.Dropout, nn.Identity)


def _calls(model: nn.Module, sample: torch.Tensor) -> tuple[list[tuple[str, nn.Module, object, object]], object]:
    """(name, module, input, output) of every named module, in the order they finished, and the model's output."""
    calls: list[tuple[str, nn.Module, object, object]] = []
    handles = [m.register_forward_hook(lambda mod, args, out, name=name: calls.append(
        (name, mod, args[0] if args else None, out))) for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            out = model(sample[:1])
    finally:
        for handle in handles:
            handle.remove()
    return calls, out


def gap_layers(model: nn.Module, sample: torch.Tensor, model_name: str) -> tuple[str, str]:
    """(the layer whose maps are pooled, the final linear layer) of a global-average-pooling model, or a
    UserError that says why the model is not one."""
    calls, result = _calls(model, sample)
    leaves = [c for c in calls if not list(c[1].children())]
    linear = [i for i, c in enumerate(leaves) if isinstance(c[1], nn.Linear)]
    why = None
    if not linear:
        why = "it has no linear layer"
    else:
        last = linear[-1]
        fc_name, _, fc_in, fc_out = leaves[last]
        before = [c for c in leaves[:last] if not isinstance(c[1], PASS_THROUGH) or c[3] is not fc_in]
        pool = before[-1] if before else None
        pooled = (pool is not None and isinstance(pool[1], nn.AdaptiveAvgPool2d)
                  and isinstance(pool[3], torch.Tensor) and pool[3].shape[-2:] == (1, 1)
                  and isinstance(fc_in, torch.Tensor) and fc_in.numel() == pool[3].numel())
        if fc_out is not result:
            why = f"its last linear layer '{fc_name}' is not its output"
        elif not pooled:
            what = f"'{pool[0]}' ({type(pool[1]).__name__})" if pool is not None else "nothing"
            why = f"its last linear layer '{fc_name}' reads {what}, not a global average pool"
        else:
            maps = pool[2]
            targets = [name for name, _, _, out in calls if out is maps]
            if targets:
                return min(targets, key=len), fc_name  # the outermost module that gives the pooled maps
            why = "the maps it pools come from no named layer"
    raise UserError(f"method=cam needs a model that ends in global average pooling followed by one linear layer "
                    f"(resnet, torchvision's classifiers), and the {model_name} does not: {why}. Use method=gradcam, "
                    "which works on any conv layer.")
