"""`trainctl explain ckpt=PATH [split=test] [n=16] [method=...] [layer=...] [class=...] [device=...] [KEY=VALUE ...]`.

Rebuilds the run from its checkpoint exactly as `trainctl eval` does (the same safe loading), takes the first `n`
images of a split and draws what the model looks at: a PNG grid in `<run>/explain/` and the same picture in the
run's TensorBoard (tag `visuals/explain_<method>`, at the checkpoint's epoch). Only those `n` images are transformed and
run through the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from trainctl.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from trainctl.commands.from_checkpoint import RestoredRun
    from trainctl.data.splits import DataSpec
    from trainctl.explain.render import Picture

log = logging.getLogger("trainctl")

USAGE = """usage: trainctl explain ckpt=PATH [method=NAME] [split=test|val|train] [n=16] [layer=NAME] [class=C]
                        [device=auto|cpu|cuda|mps] [KEY=VALUE ...]

What a trained image classifier looks at, for the first n images of a split (default 16; featuremaps: 4).
PATH is a checkpoint file or a run directory (its checkpoints/best.pt). The picture is written to
<run>/explain/<method>_<split>.png and to the run's TensorBoard (tag visuals/explain_<method>).
methods:
  gradcam     Grad-CAM heatmaps (default for models with conv layers); also gradcampp, xgradcam, layercam,
              scorecam (torchcam's CAM variants)
  saliency    |d score / d pixel| (default for models without conv layers, e.g. the mlp)
  guided      guided backpropagation: the input gradient with only positive gradients through each ReLU
  guidedgradcam guided backpropagation times Grad-CAM (layer=NAME as for gradcam)
  featuremaps the activations of a layer (default: the first conv layer), all its channels up to 64
              (channels=N: the first N)
  kernels     the weights of the first conv layer (or layer=NAME), as a grid
  cam         the original CAM, for models that end in global average pooling and one linear layer
  regions     classifiers of two features (blobs): the predicted classes over the plane, with the split's
              points (default split=train)
layer=NAME    a module name as model.named_modules() gives it (e.g. conv2, layer4.1.conv2; an index such as 3
              still works); default: found automatically
class=C       explain class C (index or name) instead of each image's predicted class
Extra KEY=VALUE pairs change the stored config (e.g. dataset.root=DIR). A checkpoint whose config names code
(_target_) is refused unless you name the same on this command line or add trust_targets=true."""
SPLITS = ("test", "val", "train")
OPTIONS = ("ckpt", "split", "n", "method", "layer", "class", "channels", "device", "trust_targets")
MAX_N = 64
DEFAULT_N = {"featuremaps": 4}  # rows of 17 panels each; the other methods show 16 images


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    from trainctl.commands.from_checkpoint import check_choice, parse_options
    from trainctl.explain import METHODS
    from trainctl.registry import did_you_mean

    options, overrides = parse_options(args, OPTIONS, USAGE)
    method = options.get("method")
    check_choice(options, "split", ("train", *SPLITS[:2]) if method == "regions" else SPLITS)  # regions: training points
    if method is not None and method not in METHODS:
        raise UserError(f"method={method} is not a method of trainctl explain{did_you_mean(method, list(METHODS))} "
                        f"(methods: {', '.join(METHODS)})")
    n = options.get("n", "")
    if n and not (n.isdigit() and 1 <= int(n) <= MAX_N):
        raise UserError(f"n={n} is not a number of images from 1 to {MAX_N}")
    channels = options.get("channels")
    if channels is not None:
        from trainctl.explain.render import MAX_CHANNELS

        if not (channels.isdigit() and 1 <= int(channels) <= MAX_CHANNELS):
            raise UserError(f"channels={channels} is not a number of feature maps from 1 to {MAX_CHANNELS}")
        if method != "featuremaps":
            raise UserError(f"channels={channels} is an option of method=featuremaps only")
    return options, overrides


def run_explain(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args:
        raise UserError(f"which checkpoint? {USAGE}")
    options, overrides = _parse(args)
    from trainctl.commands.from_checkpoint import restore_run
    from trainctl.explain.layers import conv_layers
    from trainctl.explain.samples import class_index
    from trainctl.files import atomic_write_bytes
    from trainctl.terminal import console

    run = restore_run(options["ckpt"], options.get("device", "auto"), overrides,
                      options.get("trust_targets") == "true")
    if options.get("method") == "regions":
        return _regions(run, options)
    check_images(run.cfg.dataset.name, run.data.spec)
    model = run.parts.model.eval()
    model_name = f"model '{run.cfg.model.get('name') or type(run.parts.model).__name__}'"
    has_conv = bool(conv_layers(model))
    method = options.get("method") or ("gradcam" if has_conv else "saliency")
    from trainctl.explain import GRADIENT_METHODS

    if not has_conv and method not in GRADIENT_METHODS:
        from trainctl.explain import LABELS

        raise UserError(f"the {model_name} has no conv layer for {LABELS[method]}: use method=saliency")
    explained = class_index(options["class"], run.data.spec) if "class" in options else None
    if method == "kernels":
        picture, what = _draw_kernels(run, model, options.get("layer"), model_name)
        name = "kernels.png"
    else:
        picture, what = _draw_samples(run, model, method, options, explained, model_name)
        name = f"{method}_{options['split']}" + ("" if explained is None else f"_class{explained}") + ".png"
    path = run.run_dir / "explain" / name
    atomic_write_bytes(path, lambda f: f.write(picture.png))
    _to_tensorboard(run.run_dir, f"visuals/explain_{method}", picture.rgb, int(run.state.get("epoch", 0)))
    console.print(f"{what}: written to {path}", soft_wrap=True, highlight=False)
    return 0


def _regions(run: RestoredRun, options: dict[str, str]) -> int:
    """`method=regions`: the decision-regions picture of a classifier of two features."""
    from trainctl.callbacks.regions import MAX_POINTS, has_two_features, regions_figure
    from trainctl.explain.render import picture_of
    from trainctl.files import atomic_write_bytes
    from trainctl.terminal import console

    spec, split_name = run.data.spec, options["split"]
    if not has_two_features(spec.input_shape, spec.task):
        raise UserError(f"method=regions draws a classifier's decision regions over the plane of its two input "
                        f"features, but the '{run.cfg.dataset.name}' dataset's inputs are shaped {spec.input_shape} "
                        f"({spec.task}): explain it with another method, or train on 2-feature data (dataset=blobs)")
    split = getattr(run.data, split_name)
    x, y = split.x[:MAX_POINTS].to(run.device), split.y[:MAX_POINTS]
    title = f"decision regions, epoch {run.state.get('epoch', '?')}: {split_name} points over the predicted classes"
    names = list(spec.class_names) or [str(c) for c in range(spec.num_classes)]
    picture = picture_of(regions_figure(run.parts.model.eval(), run.data.eval_transform(x, None), y, names, title))
    path = run.run_dir / "explain" / f"regions_{split_name}.png"
    atomic_write_bytes(path, lambda f: f.write(picture.png))
    _to_tensorboard(run.run_dir, "visuals/explain_regions", picture.rgb, int(run.state.get("epoch", 0)))
    console.print(f"decision regions: written to {path}", soft_wrap=True, highlight=False)
    return 0


def check_images(dataset: str, spec: DataSpec) -> None:
    """Refuse data that are not images of classes: every method here draws over an image and names classes."""
    images = "an image dataset (fashionmnist, mnist, cifar10, imagefolder)"
    if len(spec.input_shape) != 3:
        raise UserError(f"trainctl explain draws what an image classifier looks at, but the '{dataset}' dataset's "
                        f"inputs are shaped {spec.input_shape}, not images (C, H, W): explain a run trained on "
                        f"{images}")
    if spec.task != "classification":
        raise UserError(f"trainctl explain draws what an image classifier looks at, but the '{dataset}' dataset is a "
                        f"{spec.task} task: explain a classifier trained on {images}")


def _draw_kernels(run: RestoredRun, model: nn.Module, layer: str | None, model_name: str) -> tuple[Picture, str]:
    """The kernels grid (no data needed) and a line saying what it shows."""
    from trainctl.explain import layers, methods, render

    name, conv = layers.kernel_layer(model, layer, model_name)
    weights = methods.kernels(conv)
    shape = "x".join(map(str, weights.shape[1:]))
    title = f"kernels of layer '{name}' ({weights.shape[0]} of {shape}), epoch {run.state.get('epoch', '?')}"
    return render.kernel_grid(weights, title), f"kernels of layer '{name}'"


def _draw_samples(run: RestoredRun, model: nn.Module, method: str, options: dict[str, str],
                  explained: int | None, model_name: str) -> tuple[Picture, str]:
    """The grid of the first n images of the split (heatmaps or feature maps), and a line saying what it shows."""
    from trainctl.explain import LABELS, layers, methods, render
    from trainctl.explain.samples import class_names, first_samples, predict

    n = int(options.get("n") or DEFAULT_N.get(method, 16))
    split = getattr(run.data, options["split"])
    if len(split) == 0:
        raise UserError(f"the {options['split']} split of this run is empty: choose another with split=")
    samples = first_samples(split, run.data.eval_transform, n, run.device)
    prediction = predict(model, samples.inputs, explained)
    names = class_names(run.data.spec)
    captions = [render.Caption(names[int(t)], names[int(p)], float(q))
                for t, p, q in zip(samples.labels, prediction.predicted, prediction.probability)]
    label, requested = LABELS[method], options.get("layer")
    where = f"{len(samples)} {options['split']} images, epoch {run.state.get('epoch', '?')}"
    if method == "featuremaps":
        layer = layers.feature_layer(model, samples.inputs, requested, model_name)
        maps = methods.feature_maps(model, samples.inputs, layer).cpu()
        shown = min(int(options.get("channels") or render.MAX_CHANNELS), maps.shape[1])
        title = f"{label} of layer '{layer}' ({shown} of {maps.shape[1]} channels), {where}"
        what = f"{label} of layer '{layer}', {shown} of {maps.shape[1]} channels"
        return render.feature_grid(samples.pixels, maps[:, :shown], captions, title), what
    if method == "saliency":
        on = ""
        heatmaps = methods.saliency_heatmaps(model, samples.inputs, prediction.explained)
    elif method == "guided":
        on = ""
        heatmaps = methods.guided_heatmaps(model, samples.inputs, prediction.explained, model_name)
    elif method == "guidedgradcam":  # the fine guided map, kept where Grad-CAM's coarse map says the class is
        layer = layers.cam_layer(model, samples.inputs, requested, model_name)
        on = f" on layer '{layer}'"
        guided = methods.guided_heatmaps(model, samples.inputs, prediction.explained, model_name)
        cam = methods.cam_heatmaps(model, samples.inputs, prediction.explained, layer, "gradcam")
        heatmaps = methods.normalise(guided * cam)
    elif method == "cam":  # the layer is the one the model pools: `layer=` cannot choose another
        from trainctl.explain.gap import gap_layers

        layer, fc = gap_layers(model, samples.inputs, model_name)
        on = f" on layer '{layer}' weighted by '{fc}'"
        heatmaps = methods.cam_heatmaps(model, samples.inputs, prediction.explained, layer, method, fc)
    else:
        layer = layers.cam_layer(model, samples.inputs, requested, model_name)
        on = f" on layer '{layer}'"
        heatmaps = methods.cam_heatmaps(model, samples.inputs, prediction.explained, layer, method)
    target = "each image's predicted class" if explained is None else f"class '{names[explained]}'"
    title = f"{label}{on} for {target}, {where}"
    heatmaps = heatmaps.cpu()
    return render.heatmap_grid(samples.pixels, heatmaps, captions, title), f"{label}{on}" + _empty_note(heatmaps, label)


def _empty_note(heatmaps: torch.Tensor, label: str) -> str:
    """A hint when some maps are empty. Grad-CAM weighs each channel by its gradient averaged over positions,
    which suits models that pool before the classifier; behind a flatten + linear head those averages can be
    negative and the map zero everywhere (always on a ReLU's output), while Layer-CAM's weights per position
    still show where the evidence is."""
    empty = int((heatmaps.flatten(1).amax(1) == 0).sum())
    if not empty:
        return ""
    other = ("" if label in ("Layer-CAM", "saliency", "guided backprop")  # no CAM, or the one the hint names
             else "; method=layercam weighs each position and often shows more")
    return f" ({empty} of {len(heatmaps)} maps are empty: no positive evidence found{other})"


def _to_tensorboard(run_dir: Path, tag: str, rgb: np.ndarray, step: int) -> None:
    """The picture beside the run's other images, in its own event file; a failure is a warning, as the PNG
    is already written."""
    try:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(run_dir), filename_suffix=".explain") as writer:
            writer.add_image(tag, rgb, step, dataformats="HWC")
    except Exception as e:  # noqa: BLE001  (an optional copy of what the PNG already holds)
        log.warning("could not add the picture to TensorBoard in %s: %s", run_dir, e)
