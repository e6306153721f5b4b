"""`trainctl summary [overrides]`: the model's table (layers, output shapes, parameters, multiply-adds) for the
composed config, without training and without reading the dataset: its input shape comes from the dataset's
config (`trainctl.data.shapes`). The same table a run writes to `<run>/model.txt`.
"""

from __future__ import annotations

import sys

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from trainctl.errors import UserError

if TYPE_CHECKING:
    import torch

USAGE = """usage: trainctl summary [--params] [overrides]

The model's layers, output shapes, parameters and multiply-adds for a batch of one sample, with totals, as a
run of `trainctl train` with the same overrides would build it; nothing is trained and no data is read.
--params also lists every parameter by name with its shape (model.named_parameters(), as the tutorial prints).
  trainctl summary model=vgg dataset=cifar10
  trainctl summary --params model=cnn model.channels=[8,16]"""
PARAMS_FLAG = "--params"



def _checkpoint_notes(cfg: DictConfig) -> list[str]:
    """`init_from=`/`resume=` given to summary: the table is of the model the config builds, and code that the
    checkpoint or its run's files name is never imported; say so rather than leave it a guess."""
    from pathlib import Path

    from trainctl.config.trust import ignored_targets_notice, stored_targets
    from trainctl.engine.checkpoint import checkpoint_file, load_checkpoint
    from trainctl.engine.resume import run_dir_of

    key = "init_from" if cfg.get("init_from") else "resume"
    path = checkpoint_file(str(cfg[key]), "best" if key == "init_from" else "last")
    if not Path(path).is_file():
        raise UserError(f"{key}={cfg[key]}: no checkpoint at {path}. Give a run directory or a .pt file.")
    stored = load_checkpoint(path).get("config")
    notice = ignored_targets_notice(run_dir_of(path), stored_targets(stored if isinstance(stored, dict) else {}),
                                    cfg, path, "The table is of the model your config builds.")
    return [f"{key}={cfg[key]}: no weights are loaded (they change no shape or count)."] + ([notice] if notice else [])


def check_untrusted_parts(cfg: DictConfig) -> None:
    """Every `_target_` the config names, checked as `train` checks it, though this command builds only a part."""
    from trainctl.callbacks.loading import check_callback_targets
    from trainctl.config.targets import check_component_targets

    check_component_targets(cfg)
    check_callback_targets(cfg)


def run_summary(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    params = PARAMS_FLAG in args
    args = [a for a in args if a != PARAMS_FLAG]
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise UserError(f"trainctl summary takes key=value overrides only, not {flags[0]}. {USAGE}")
    from trainctl.config.overrides import quote_paths
    from trainctl.config.hydra_errors import compose_explained
    from trainctl.config.validate import validate
    from trainctl.data.shapes import spec_from_config

    overrides = quote_paths(args)
    cfg = compose_explained(overrides)
    validate(cfg, overrides)
    check_untrusted_parts(cfg)
    spec, notes = spec_from_config(cfg.dataset)
    if cfg.model.get("weights") is not None:
        if cfg.model.get("arch") is not None:  # a weights name is checked as training checks it, without a download
            from trainctl.components.convnets import check_weights

            check_weights(cfg.model.arch, cfg.model.weights)
        cfg.model.weights = None  # the same layers either way; pretrained ones would be downloaded for nothing
        notes.append("pretrained weights were not loaded: they change no shape or count.")

    from trainctl.callbacks.summary import summarize
    from trainctl.components import build_model

    if cfg.get("init_from") or cfg.get("resume"):
        notes += _checkpoint_notes(cfg)
    model = build_model(cfg.model, spec)
    if cfg.model.get("freeze"):  # so the trainable count is the one training would have
        from trainctl.engine.finetune import freeze

        freeze(model, [str(p) for p in cfg.model.freeze], cfg.model.name)
    result = summarize(model, spec.input_shape, notes)
    sys.stdout.write(result.text)
    if params:
        sys.stdout.write(parameter_table(model))
    if result.problem is not None:
        print(f"warning: {result.problem}", file=sys.stderr)
    return 0


def parameter_table(model: "torch.nn.Module") -> str:
    """Every parameter by name, with its shape, size and whether it trains (model.freeze)."""
    rows = [(name, "x".join(map(str, p.shape)) or "scalar", f"{p.numel():,}", "yes" if p.requires_grad else "no")
            for name, p in model.named_parameters()]
    header = ("parameter", "shape", "values", "trains")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    return "\n" + "\n".join(line.rstrip() for line in lines) + "\n"
