"""`trainctl predict ckpt=PATH inputs=PATH|GLOB [topk=3] [format=csv|json] [out=FILE] [device=...] [KEY=VALUE ...]`.

Rebuilds the model from its checkpoint exactly as `trainctl eval` does (the same safe loading, the EMA weights
when the run kept them), reads the inputs, preprocesses them as training did (channels, size, normalisation from
the checkpoint's config), runs them in batches on the best device, prints the first rows and writes all of them
(default: `predictions.csv` in the checkpoint's run directory).
"""

from __future__ import annotations

import logging

from trainctl.errors import UserError

log = logging.getLogger("trainctl")

USAGE = """usage: trainctl predict ckpt=PATH inputs=PATH|GLOB [topk=K] [format=csv|json] [out=FILE]
                        [device=auto|cpu|cuda|mps] [KEY=VALUE ...]

The model's predictions for new inputs, preprocessed as in training (channels, size and normalisation come from
the checkpoint's config; a grey/RGB conversion or a resize is said). PATH is a checkpoint file or a run
directory (its checkpoints/best.pt).
inputs=   an image (PNG, JPEG, ...), a folder of images (searched recursively), a quoted glob ('shots/*.png'),
          an IDX file, or a .npy/.pt tensor file: [N, C, H, W], [N, H, W] (grey) or one sample; uint8 pixels or
          floats in [0, 1]. Unreadable files are named and skipped.
topk=K    the K most likely classes of each input, with names and probabilities (default 3)
format=   csv (default) or json, written to <run>/predictions.<format> unless out=FILE
A regression model's predicted values are written instead of classes. Extra KEY=VALUE pairs change the stored
config (e.g. dataset.root=DIR). A checkpoint whose config names code (_target_) is refused unless you name the
same on this command line or add trust_targets=true."""
OPTIONS = ("ckpt", "inputs", "topk", "format", "out", "device", "trust_targets")
DEFAULT_TOPK = 3


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    from trainctl.commands.from_checkpoint import check_choice, parse_options
    from trainctl.deploy import OUTPUT_FORMATS

    options, overrides = parse_options(args, OPTIONS, USAGE)
    if "inputs" not in options:
        raise UserError(f"which inputs? give inputs=PATH (an image, a folder, a glob, an IDX or tensor file). {USAGE}")
    check_choice(options, "format", OUTPUT_FORMATS)
    topk = options.get("topk")
    if topk is not None and not (topk.isdigit() and int(topk) >= 1):
        raise UserError(f"topk={topk} is not a whole number of classes, 1 or more")
    return options, overrides


def _topk(options: dict[str, str], num_classes: int) -> int:
    if "topk" not in options:
        return min(DEFAULT_TOPK, num_classes)
    topk = int(options["topk"])
    if topk > num_classes:
        raise UserError(f"topk={topk} is more than the model's {num_classes} classes: use topk={num_classes} or less")
    return topk


def run_predict(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args:
        raise UserError(f"which checkpoint? {USAGE}")
    options, overrides = _parse(args)
    from pathlib import Path

    from trainctl.commands.from_checkpoint import restore_run
    from trainctl.deploy.inputs import InputReader, find_inputs
    from trainctl.deploy.predict import predict, table, write_predictions
    from trainctl.deploy.preprocess import WithUserTransforms, input_rules
    from trainctl.terminal import console

    files, ignored = find_inputs(options["inputs"])  # before the checkpoint: a wrong path fails at once
    run = restore_run(options["ckpt"], options.get("device", "auto"), overrides,
                      options.get("trust_targets") == "true")
    spec, cfg = run.data.spec, run.cfg
    classify = spec.task == "classification"
    topk = _topk(options, spec.num_classes) if classify else 0
    rules = input_rules(cfg.dataset, spec)
    model_name = f"model '{cfg.model.get('name') or cfg.model.get('_target_')}'"
    reader = InputReader(rules, cfg.trainer.eval_batch_size, model_name)
    preprocess = WithUserTransforms(rules.preprocess(), cfg.dataset)
    result = predict(run.parts.model, preprocess, reader.chunks(files), run.parts.settings, spec.task, topk,
                     sigmoid=cfg.loss.get("name") == "bce_with_logits")
    _report_skipped(reader.skipped, len(files))
    if not len(result):
        raise UserError(f"none of the {len(files)} input file(s) could be read: "
                        + "; ".join(f"{name}: {why}" for name, why in reader.skipped[:3]))
    names = spec.class_names or tuple(str(i) for i in range(spec.num_classes))
    console.print(table(result, names))
    for line in reader.adjustments.lines(rules):
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    if ignored:
        console.print(f"ignored {ignored} other file(s): predict reads images, .npy/.pt tensor files and (named or globbed) IDX files", highlight=False)
    fmt = options["format"]
    out = Path(options.get("out") or run.run_dir / f"predictions.{fmt}")
    write_predictions(out, result, names, fmt)
    what = f"top-{topk} classes" if classify else "predicted values"
    console.print(f"{len(result)} input(s), {what}, written to {out}", soft_wrap=True, highlight=False,
                  markup=False)
    return 0


def _report_skipped(skipped: list[tuple[str, str]], files: int) -> None:
    """One warning that counts the unreadable files and names the first few with the reason."""
    if not skipped:
        return
    shown = "; ".join(f"{name} ({why})" for name, why in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    log.warning("skipped %d of %d input file(s) that could not be read: %s%s", len(skipped), files, shown, more)
