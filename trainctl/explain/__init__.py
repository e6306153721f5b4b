"""What a trained image classifier looks at: class activation maps (torchcam), input-gradient saliency, a layer's
feature maps and the first conv layer's kernels, drawn as one PNG grid (`trainctl explain`).

`samples` takes the first images of a split and the model's predictions, `layers` finds and checks the layer a
method needs, `methods` computes the maps, `render` draws them.
"""
