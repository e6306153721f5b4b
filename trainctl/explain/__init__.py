"""What a trained image classifier looks at: class activation maps (torchcam), input-gradient saliency, a layer's
feature maps and the first conv layer's kernels, drawn as one PNG grid (`trainctl explain`).

`samples` takes the first images of a split and the model's predictions, `layers` finds and checks the layer a
method needs, `methods` computes the maps, `render` draws them.
"""

from __future__ import annotations

# The method names `method=` takes (no torch here: the command checks them before importing anything heavy).
# CAM method -> (torchcam extractor class, the label its pictures carry)
CAM_METHODS: dict[str, tuple[str, str]] = {
    "gradcam": ("GradCAM", "Grad-CAM"),
    "gradcampp": ("GradCAMpp", "Grad-CAM++"),
    "xgradcam": ("XGradCAM", "XGrad-CAM"),
    "layercam": ("LayerCAM", "Layer-CAM"),
    "scorecam": ("ScoreCAM", "Score-CAM"),
    "cam": ("CAM", "CAM"),  # the original: the last linear layer's weights over a global-average-pooled layer
}
METHODS: tuple[str, ...] = (*CAM_METHODS, "saliency", "guided", "guidedgradcam", "featuremaps", "kernels", "regions")
LABELS: dict[str, str] = {**{name: label for name, (_, label) in CAM_METHODS.items()}, "saliency": "saliency",
                          "guided": "guided backprop", "guidedgradcam": "guided Grad-CAM",
                          "featuremaps": "feature maps", "kernels": "kernels", "regions": "decision regions"}
GRADIENT_METHODS = ("saliency", "guided")  # need no conv layer
