"""`trainctl explain ckpt=PATH [split=test] [n=16] [method=...] [layer=...] [class=...] [device=...] [KEY=VALUE ...]`.

Rebuilds the run from its checkpoint exactly as `trainctl eval` does (the same safe loading), takes the first `n`
images of a split and draws what the model looks at: a PNG grid in `<run>/explain/` and the same picture in the
run's TensorBoard (tag `explain/<method>`, at the checkpoint's epoch). Only those `n` images are transformed and
run through the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from trainctl.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from trainctl.commands.from_checkpoint import RestoredRun
    from trainctl.data.splits import DataSpec
    from trainctl.explain.render import Picture

log = logging.getLogger("trainctl")

USAGE = """usage: trainctl explain ckpt=PATH [method=NAME] [split=test|val|train] [n=16] [layer=NAME] [class=C]
                        [device=auto|cpu|cuda|mps] [KEY=VALUE ...]

What a trained image classifier looks at, for the first n images of a split (default 16; featuremaps: 4).
PATH is a checkpoint file or a run directory (its checkpoints/best.pt). The picture is written to
<run>/explain/<method>_<split>.png and to the run's TensorBoard (tag explain/<method>).
methods:
  gradcam     Grad-CAM heatmaps (default for models with conv layers); also gradcampp, xgradcam, layercam,
              scorecam (torchcam's CAM variants)
  saliency    |d score / d pixel| (default for models without conv layers, e.g. the mlp)
  featuremaps the activations of a layer (default: the first conv layer)
  kernels     the weights of the first conv layer (or layer=NAME), as a grid
layer=NAME    a module name as model.named_modules() gives it (e.g. 3, features.0); default: found automatically
class=C       explain class C (index or name) instead of each image's predicted class
Extra KEY=VALUE pairs change the stored config (e.g. dataset.root=DIR). A checkpoint whose config names code
(_target_) is refused unless you name the same on this command line or add trust_targets=true."""
SPLITS = ("test", "val", "train")
OPTIONS = ("ckpt", "split", "n", "method", "layer", "class", "device", "trust_targets")
MAX_N = 64
DEFAULT_N = {"featuremaps": 4}  # rows of 17 panels each; the other methods show 16 images


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    from trainctl.commands.from_checkpoint import check_choice, parse_options
    from trainctl.explain.methods import METHODS
    from trainctl.registry import did_you_mean

    options, overrides = parse_options(args, OPTIONS, USAGE)
    check_choice(options, "split", SPLITS)
    method = options.get("method")
    if method is not None and method not in METHODS:
        raise UserError(f"method={method} is not a method of trainctl explain{did_you_mean(method, list(METHODS))} "
                        f"(methods: {', '.join(METHODS)})")
    n = options.get("n", "")
    if n and not (n.isdigit() and 1 <= int(n) <= MAX_N):
        raise UserError(f"n={n} is not a number of images from 1 to {MAX_N}")
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
    from trainctl.files import atomic_write_bytes
    from trainctl.terminal import console

    run = restore_run(options["ckpt"], options.get("device", "auto"), overrides,
                      options.get("trust_targets") == "true")
    spec, model_name = run.data.spec, f"model '{run.cfg.model.name}'"
    if len(spec.input_shape) != 3 or spec.task != "classification":
        raise UserError(f"trainctl explain shows what an image classifier looks at, and the '{run.cfg.dataset.name}' "
                        f"dataset gives {spec.task} of inputs shaped {spec.input_shape}: use it on an image dataset "
                        "(fashionmnist, mnist, cifar10, imagefolder)")
    model = run.parts.model.eval()
    has_conv = bool(conv_layers(model))
    method = options.get("method") or ("gradcam" if has_conv else "saliency")
    _check_fit(method, has_conv, model_name)
    picture, what = _draw(run, model, method, options, model_name)
    name = f"{method}.png" if method == "kernels" else f"{method}_{options['split']}.png"
    if "class" in options and method != "kernels":
        name = name.replace(".png", f"_class{_explained_class(options, spec)}.png")
    path = run.run_dir / "explain" / name
    atomic_write_bytes(path, lambda f: f.write(picture.png))
    _to_tensorboard(run.run_dir, f"explain/{method}", picture.rgb, int(run.state.get("epoch", 0)))
    console.print(f"{what}: written to {path}", soft_wrap=True, highlight=False)
    return 0


def _check_fit(method: str, has_conv: bool, model_name: str) -> None:
    """Refuse a method the model has no layer for, naming the one that fits."""
    from trainctl.explain.methods import CAM_METHODS, LABELS

    if has_conv or method == "saliency":
        return
    needs = {"featuremaps": "feature maps", "kernels": "kernels"}.get(method, LABELS[method])
    if method in CAM_METHODS or method in ("featuremaps", "kernels"):
        raise UserError(f"the {model_name} has no conv layer for {needs}: use method=saliency")


def _explained_class(options: dict[str, str], spec: DataSpec) -> int | None:
    from trainctl.explain.samples import class_index

    return class_index(options["class"], spec) if "class" in options else None


def _draw(run: RestoredRun, model: nn.Module, method: str, options: dict[str, str], model_name: str
          ) -> tuple[Picture, str]:
    """The picture for `method` and a line saying what it shows."""
    from trainctl.explain import layers, methods, render
    from trainctl.explain.samples import class_names, first_samples, predict

    spec, epoch = run.data.spec, run.state.get("epoch", "?")
    label = methods.LABELS[method]
    if method == "kernels":
        layer, conv = layers.kernel_layer(model, options.get("layer"), model_name)
        weights = methods.kernels(conv)
        title = f"{label} of layer '{layer}' ({weights.shape[0]} x {weights.shape[1]}x" \
                f"{weights.shape[2]}x{weights.shape[3]}), epoch {epoch}"
        return render.kernel_grid(weights, title), f"{label} of layer '{layer}'"
    explained = _explained_class(options, spec)
    n = int(options.get("n") or DEFAULT_N.get(method, 16))
    split = getattr(run.data, options["split"])
    samples = first_samples(split, run.data.eval_transform, n, run.device)
    prediction = predict(model, samples.inputs, explained)
    names = class_names(spec)
    captions = [render.Caption(names[int(t)], names[int(p)], float(q))
                for t, p, q in zip(samples.labels, prediction.predicted, prediction.probability)]
    target = "each image's predicted class" if explained is None else f"class '{names[explained]}'"
    where = f"{len(samples)} {options['split']} images, epoch {epoch}"
    if method == "featuremaps":
        layer = layers.feature_layer(model, samples.inputs, options.get("layer"), model_name)
        maps = methods.feature_maps(model, samples.inputs, layer).cpu()
        title = f"{label} of layer '{layer}' ({maps.shape[1]} channels), {where}"
        return render.feature_grid(samples.pixels, maps, captions, title), f"{label} of layer '{layer}'"
    if method == "saliency":
        layer = None
        heatmaps = methods.saliency_heatmaps(model, samples.inputs, prediction.explained)
    else:
        layer = layers.cam_layer(model, samples.inputs, options.get("layer"), model_name)
        heatmaps = methods.cam_heatmaps(model, samples.inputs, prediction.explained, layer, method)
    on = "" if layer is None else f" on layer '{layer}'"
    title = f"{label}{on} for {target}, {where}"
    return render.heatmap_grid(samples.pixels, heatmaps.cpu(), captions, title), f"{label}{on}"


def _to_tensorboard(run_dir: Path, tag: str, rgb: np.ndarray, step: int) -> None:
    """The picture beside the run's other images, in its own event file; a failure is a warning, as the PNG
    is already written."""
    try:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(run_dir), filename_suffix=".explain") as writer:
            writer.add_image(tag, rgb, step, dataformats="HWC")
    except Exception as e:  # noqa: BLE001  (an optional copy of what the PNG already holds)
        log.warning("could not add the picture to TensorBoard in %s: %s", run_dir, e)
