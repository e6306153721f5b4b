"""`trainctl eval ckpt=PATH [split=test|val|train] [out=FILE] [device=cpu] [dataset.root=DIR ...]`.

Rebuilds the run from the config stored in the checkpoint (same seed, so the same validation split), loads the
weights (the EMA weights when the run kept them), evaluates one split, prints the metrics and writes them as
JSON (default: `eval_<split>.json` in the checkpoint's run directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainctl.errors import UserError

USAGE = """usage: trainctl eval ckpt=PATH [split=test|val|train] [out=FILE] [device=auto|cpu|cuda|mps] [KEY=VALUE ...]

Metrics of a checkpoint on one split. PATH is a checkpoint file or a run directory (its checkpoints/best.pt).
Extra KEY=VALUE pairs change the stored config (e.g. dataset.root=DIR). A checkpoint whose config names
code (_target_) is refused unless you name the same on this command line or add trust_targets=true."""
SPLITS = ("test", "val", "train")
OPTIONS = ("ckpt", "split", "out", "device", "trust_targets")


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    options, config_overrides = {}, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise UserError(f"'{arg}' is not KEY=VALUE. {USAGE}")
        if key in OPTIONS:
            options[key] = value
        else:
            config_overrides.append(arg)
    if "ckpt" not in options:
        raise UserError(f"which checkpoint? {USAGE}")
    for key in ("ckpt", "out", "split", "device"):
        if key in options and not options[key]:
            raise UserError(f"{key}= is empty: give a value. {USAGE}")
    if options.get("trust_targets", "false") not in ("true", "false"):
        raise UserError(f"trust_targets={options['trust_targets']} is not a boolean: use true or false")
    split = options.setdefault("split", "test")
    if split not in SPLITS:
        raise UserError(f"split={split} is not one of {', '.join(SPLITS)}")
    return options, config_overrides


def run_eval(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args:
        raise UserError(f"which checkpoint? {USAGE}")
    options, overrides = _parse(args)
    from trainctl.config.compose import typed_config
    from trainctl.config.trust import check_stored_targets, stored_targets
    from trainctl.config.validate import validate
    from trainctl.data.catalog import build_dataset
    from trainctl.device import select_device
    from trainctl.engine.build import build_model_parts
    from trainctl.engine.checkpoint import checkpoint_file, load_checkpoint, load_weights
    from trainctl.engine.resume import run_dir_of
    from trainctl.engine.step import evaluate
    from trainctl.files import write_json
    from trainctl.terminal import console, print_summary

    path = checkpoint_file(options["ckpt"])
    device = select_device(options.get("device", "auto"))
    state = load_checkpoint(path, map_location=device)
    if not isinstance(state.get("config"), dict):
        raise UserError(f"checkpoint {path} holds no config (it was not written by `trainctl train`): trainctl "
                        "cannot tell which model to build for it.")
    check_stored_targets(stored_targets(state["config"]), overrides, options.get("trust_targets") == "true",
                         source=f"checkpoint {path}")
    cfg = typed_config(state["config"])
    try:
        cfg.merge_with_dotlist(overrides)
    except Exception as e:  # omegaconf names the key and the expected type
        first = str(e).strip().splitlines()[0]
        raise UserError(f"cannot apply {' '.join(overrides)} to the checkpoint's config: {first}") from None
    validate(cfg, overrides)  # the same checks as `trainctl train`
    data = build_dataset(cfg.dataset, cfg.seed).to(device)
    parts = build_model_parts(cfg, data, device)  # exactly as validation ran during training
    load_weights(parts.model, state["ema"] if state.get("ema") else state["model"], path)
    split = getattr(data, options["split"])
    metrics: dict[str, Any] = evaluate(parts.model, split, data, parts.loss_fn, cfg.trainer.eval_batch_size,
                                       parts.settings, per_class=True)
    result = {f"{options['split']}/{k}": v for k, v in metrics.items()}
    result.update({"checkpoint": str(path), "epoch": state["epoch"], "samples": len(split)})
    out = Path(options.get("out") or run_dir_of(path) / f"eval_{options['split']}.json")
    write_json(out, result)
    print_summary(result, path, label="checkpoint")
    console.print(f"written to {out}")
    return 0
