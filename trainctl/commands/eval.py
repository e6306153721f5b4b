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
    from trainctl.commands.from_checkpoint import check_choice, check_exists, parse_options

    options, config_overrides = parse_options(args, OPTIONS, USAGE)
    check_choice(options, "split", SPLITS)
    check_exists(options["ckpt"])
    return options, config_overrides


def run_eval(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args:
        raise UserError(f"which checkpoint? {USAGE}")
    options, overrides = _parse(args)
    from trainctl.commands.from_checkpoint import restore_run
    from trainctl.engine.build import deterministic_mode
    from trainctl.engine.step import evaluate
    from trainctl.files import write_json
    from trainctl.terminal import console, per_class_table, print_summary

    run = restore_run(options["ckpt"], options.get("device", "auto"), overrides,
                      options.get("trust_targets") == "true")
    data, parts, path = run.data.to(run.device), run.parts, run.path
    split = getattr(data, options["split"])
    with deterministic_mode(run.cfg.trainer.deterministic):  # as the run evaluated: a deterministic one exactly
        metrics: dict[str, Any] = evaluate(parts.model, split, data, parts.loss_fn,
                                           run.cfg.trainer.eval_batch_size, parts.settings, per_class=True)
    result = {f"{options['split']}/{k}": v for k, v in metrics.items()}
    result.update({"checkpoint": str(path), "epoch": run.state["epoch"], "samples": len(split)})
    out = Path(options.get("out") or run.run_dir / f"eval_{options['split']}.json")
    write_json(out, result)
    split_name = options["split"]
    shown = {k: v for k, v in result.items() if k != "checkpoint"}  # the path gets a line of its own, whole
    print_summary(shown, path, label="checkpoint", title=f"eval: {split_name} split")
    per_class = result.get(f"{split_name}/acc_per_class")
    if isinstance(per_class, dict) and per_class:
        console.print(per_class_table(per_class, f"{split_name} accuracy per class"))
    console.print(f"written to {out}", soft_wrap=True, markup=False, highlight=False)
    return 0
