"""`trainctl export ckpt=PATH [format=onnx|pt2|safetensors] [out=FILE] [preprocess=true|false] [dtype=uint8|float32]
[tolerance=1e-4] [KEY=VALUE ...]`.

Rebuilds the model from its checkpoint exactly as `trainctl eval` does (the same safe loading, the EMA weights
when the run kept them), exports it on the CPU, loads the result back in its runtime (onnxruntime, torch.export,
safetensors), compares its outputs with PyTorch's on a batch of the test split, and only then writes the file
(default: `<run>/export/model.<format>`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainctl.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn

    from trainctl.commands.from_checkpoint import RestoredRun
    from trainctl.deploy.export import Agreement
    from trainctl.deploy.preprocess import InputRules

USAGE = """usage: trainctl export ckpt=PATH [format=onnx|pt2|safetensors] [out=FILE] [preprocess=true|false]
                       [dtype=uint8|float32] [tolerance=1e-4] [KEY=VALUE ...]

The model as a file to deploy, checked before it is written: its runtime's outputs on a batch of the test split
must match PyTorch's (the maximum difference is printed). PATH is a checkpoint file or a run directory (its
checkpoints/best.pt). Written to <run>/export/model.<format> unless out=FILE.
format=onnx         ONNX (torch.onnx.export; its TorchScript-based exporter where the current one fails),
                    any batch size, checked in onnxruntime (needs: pip install "trainctl[export]")
format=pt2          torch.export's program (torch.export.load(path).module()), any batch size
format=safetensors  the weights, and <name>.json with the model's config, input shape, classes and
                    normalisation to rebuild it
preprocess=true     (onnx and pt2, image models; the default) the program takes raw images, uint8 pixels
                    [N, C, H, W] (dtype=float32: floats in [0, 1]) and normalises them itself;
                    preprocess=false takes the normalised tensor the model saw in training
tolerance=T         largest difference allowed, relative to the output's magnitude (default 1e-4)
Extra KEY=VALUE pairs change the stored config (e.g. dataset.root=DIR). A checkpoint whose config names code
(_target_) is refused unless you name the same on this command line or add trust_targets=true."""
OPTIONS = ("ckpt", "format", "out", "preprocess", "dtype", "tolerance", "trust_targets")
DTYPES = ("uint8", "float32")
DEFAULT_TOLERANCE = 1e-4


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    from trainctl.commands.from_checkpoint import check_choice, parse_options
    from trainctl.deploy import EXPORT_FORMATS

    options, overrides = parse_options(args, OPTIONS, USAGE)
    check_choice(options, "format", EXPORT_FORMATS)
    if options.get("preprocess", "true") not in ("true", "false"):
        raise UserError(f"preprocess={options['preprocess']} is not a boolean: use true or false")
    if "dtype" in options:
        check_choice(options, "dtype", DTYPES)
        if options.get("preprocess") == "false" or options["format"] == "safetensors":
            raise UserError("dtype= sets the raw-image input of preprocess=true (onnx and pt2): leave it out here")
    try:
        tolerance = float(options.setdefault("tolerance", str(DEFAULT_TOLERANCE)))
    except ValueError:
        tolerance = -1.0
    if not 0 < tolerance < float("inf"):
        raise UserError(f"tolerance={options['tolerance']} is not a positive number (e.g. tolerance=1e-3)")
    return options, overrides


def _preprocess(options: dict[str, str], rules: InputRules, dataset: str, user_transforms: bool = False) -> bool:
    """Whether the exported program normalises raw images itself (default: for images, in onnx and pt2; never
    with `dataset.eval_transforms`, which are Python code outside the graph)."""
    asked = options.get("preprocess")
    if user_transforms:
        if asked == "true":
            raise UserError("the run has dataset.eval_transforms (your own Python code), which an exported graph "
                            "cannot hold: export with preprocess=false and apply the normalisation and those "
                            "transforms before calling the model")
        return False
    if asked == "true" and options["format"] == "safetensors":
        raise UserError("safetensors holds weights only: preprocess=true applies to format=onnx and pt2 (the JSON "
                        "beside the weights gives the mean and std)")
    if asked == "true" and not rules.images:
        raise UserError(f"preprocess=true makes the program take raw images, but the '{dataset}' dataset's inputs "
                        "are not images and are used as they are: leave preprocess out")
    return rules.images and options["format"] != "safetensors" and asked != "false"


def run_export(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args:
        raise UserError(f"which checkpoint? {USAGE}")
    options, overrides = _parse(args)
    from pathlib import Path

    from trainctl.commands.from_checkpoint import restore_run
    from trainctl.deploy.export import deployable, example_batch
    from trainctl.deploy.preprocess import input_rules
    from trainctl.terminal import console

    fmt = options["format"]
    if fmt == "onnx":
        from trainctl.deploy.export import require

        require("onnx", "onnxruntime", what="format=onnx")  # before the slow part
    run = restore_run(options["ckpt"], "cpu", overrides, options.get("trust_targets") == "true")
    rules = input_rules(run.cfg.dataset, run.data.spec)
    preprocess = _preprocess(options, rules, run.cfg.dataset.name, bool(run.cfg.dataset.get("eval_transforms")))
    module = deployable(run.parts.model, rules, preprocess)
    example = example_batch(run.data.test, rules, preprocess, options.get("dtype", "uint8"))
    out = Path(options.get("out") or run.run_dir / "export" / f"model.{fmt}")
    model_name = f"model '{run.cfg.model.get('name') or run.cfg.model.get('_target_')}'"
    console.print(f"exporting {model_name} to {fmt} ...", highlight=False, markup=False)
    tolerance = float(options["tolerance"])
    if fmt == "safetensors":
        agreement, said = _safetensors(run, module, example, rules, out, tolerance)
    else:
        agreement, said = _program(run, fmt, module, example, rules, out, tolerance, model_name)
    console.print(said, soft_wrap=True, highlight=False, markup=False)
    console.print(agreement.summary({"onnx": "onnxruntime", "pt2": "the reloaded program"}.get(fmt, "the reloaded "
                                    "model")), soft_wrap=True, highlight=False, markup=False)
    console.print(f"written to {out}", soft_wrap=True, highlight=False, markup=False)
    return 0


def _program(run: RestoredRun, fmt: str, module: nn.Module, example: torch.Tensor, rules: InputRules, out: Path,
             tolerance: float, model_name: str) -> tuple[Agreement, str]:
    """ONNX or pt2: export, check in the runtime, write; returns the check and what the program takes."""
    import json

    from trainctl.deploy import export
    from trainctl.files import atomic_write_bytes

    classify = run.data.spec.task == "classification"
    if fmt == "onnx":
        metadata = {"trainctl.input": _takes(example, rules, module), "trainctl.task": run.data.spec.task,
                    "trainctl.classes": json.dumps(list(run.data.spec.class_names)),
                    "trainctl.preprocess": json.dumps(rules.describe() if _normalises(module) else None)}
        data, used = export.export_onnx(module, example, metadata, model_name)
        agreement = export.compare(module, export.onnx_runner(data), example, tolerance, classify, "onnxruntime")
        said = f"ONNX by the {used}"
    else:
        data, runner = export.export_pt2(module, example, model_name)
        agreement = export.compare(module, runner, example, tolerance, classify, "the reloaded program")
        said = "torch.export program (load it with torch.export.load(path).module())"
    atomic_write_bytes(out, lambda f: f.write(data))
    return agreement, f"{said}; it takes {_takes(example, rules, module)}"


def _safetensors(run: RestoredRun, model: nn.Module, example: torch.Tensor, rules: InputRules, out: Path,
                 tolerance: float) -> tuple[Agreement, str]:
    """The weights and their JSON: rebuilt from the bytes and compared before either file is written."""
    import json

    from trainctl.deploy import export, weights
    from trainctl.files import atomic_write_bytes

    source = {"checkpoint": str(run.path), "epoch": run.state.get("epoch")}
    meta = weights.describe(run.cfg.model, run.data.spec, rules, source)
    data = weights.safetensors_bytes(model)
    rebuilt = weights.reload_runner(data, meta, trust_targets=True)  # its _target_s passed the checkpoint's check

    def run_rebuilt(x: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            return rebuilt(x)

    agreement = export.compare(model, run_rebuilt, example, tolerance, run.data.spec.task == "classification",
                               "the rebuilt model")
    side = weights.sidecar_path(out)
    atomic_write_bytes(out, lambda f: f.write(data))
    atomic_write_bytes(side, lambda f: f.write((json.dumps(meta, indent=2) + "\n").encode()))
    takes = _takes(example, rules, model)
    return agreement, f"weights as safetensors, and {side.name} to rebuild the model; it takes {takes}"


def _normalises(module: nn.Module) -> bool:
    from trainctl.deploy.preprocess import Preprocess

    return any(isinstance(m, Preprocess) for m in module.modules())


def _takes(example: torch.Tensor, rules: InputRules, module: nn.Module) -> str:
    """What the exported program's input is, in words."""
    shape = f"[N, {', '.join(map(str, example.shape[1:]))}]"
    if not rules.images:
        return f"float32 inputs {shape}, as they are"
    if not _normalises(module):
        return f"float32 images {shape}, normalised as in training (x / 255 - mean) / std"
    if str(example.dtype) == "torch.uint8":
        return f"raw uint8 images {shape} (0-255) and normalises them itself"
    return f"raw float32 images {shape} in [0, 1] and normalises them itself"
