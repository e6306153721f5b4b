"""`trainctl lr-find [lr_find.KEY=VALUE ...] [overrides]`: the learning-rate range test for the composed
config (`trainctl.engine.lr_range`), with the model, data and optimizer a `trainctl train` with the same
overrides would build. It prints the suggested `optimizer.lr` and the command that uses it, and writes the
curve (PNG, CSV, JSON, TensorBoard) into a run directory of its own. The trained weights are thrown away.

The test's own settings take the `lr_find.` prefix, which no config key has, so they never clash with an
override; they are read here, before the config is composed.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import random
import shlex
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainctl.errors import UserError

USAGE = """usage: trainctl lr-find [lr_find.start_lr=1e-7] [lr_find.end_lr=10] [lr_find.steps=200] [overrides]

The learning-rate range test: one training step per batch while the learning rate grows exponentially from
start_lr to end_lr, stopped when the smoothed loss passes lr_find.diverge (default 4) times its minimum.
Suggests optimizer.lr where the smoothed loss falls fastest, and writes the loss-against-lr curve to
runs/<date>_lr-find_<model>-<dataset>_<id>/ (lr_find.png, lr_find.csv, lr_find.json, TensorBoard).
Overrides are those of `trainctl train`; the scheduler and optimizer.lr are ignored.
  trainctl lr-find
  trainctl lr-find model=resnet optimizer=sgd lr_find.steps=300"""
PREFIX = "lr_find."


def parse(args: list[str]) -> tuple[Any, list[str]]:
    """The range test's options (`lr_find.*`) and the config overrides (the rest)."""
    from trainctl.engine.lr_range import RangeOptions

    types = {f.name: f.type for f in dataclasses.fields(RangeOptions)}
    values: dict[str, Any] = {}
    overrides = []
    for arg in args:
        if not arg.startswith(PREFIX):
            overrides.append(arg)
            continue
        key, sep, value = arg[len(PREFIX):].partition("=")
        if key not in types or not sep:
            raise UserError(f"unknown lr-find option '{arg}': the options are "
                            f"{', '.join(PREFIX + k + '=' for k in types)}\n{USAGE}")
        number = int if types[key] in (int, "int") else float
        try:
            values[key] = number(value)
        except ValueError:
            kind = "a whole number" if number is int else "a number"
            raise UserError(f"{PREFIX}{key}={value} is not {kind}, e.g. {PREFIX}{key}="
                            f"{getattr(RangeOptions, key)}") from None
    options = RangeOptions(**values)
    options.check()
    return options, overrides



def _show_log() -> None:
    """What the engine logs while building (init_from, model.freeze) goes to stderr, as in a training run."""
    log = logging.getLogger("trainctl")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def run_lr_find(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise UserError(f"trainctl lr-find takes key=value arguments only, not {flags[0]}. {USAGE}")
    options, overrides = parse(args)
    from trainctl.config.overrides import quote_paths
    from trainctl.commands.summary import check_untrusted_parts
    from trainctl.config.hydra_errors import compose_explained
    from trainctl.config.validate import validate
    from trainctl.data.locate import check_available

    overrides = quote_paths(overrides)
    cfg = compose_explained(overrides)
    validate(cfg, overrides)
    check_untrusted_parts(cfg)
    check_available(cfg.dataset)
    _show_log()
    test = _range_test(cfg, options)
    run_dir = _write(cfg, options, test)
    lr = f"{test.suggestion:.2g}"
    kept = [a for a in args if not a.startswith((PREFIX, "optimizer.lr="))]
    print(f"lr-find: {len(test.losses)} of {options.steps} steps, {test.stopped}")
    print(f"suggested optimizer.lr={lr} (the {_rule()}; the smoothed loss is lowest at lr "
          f"{test.minimum_lr:.2g})")
    print("  " + shlex.join(["trainctl", "train", *kept, f"optimizer.lr={lr}"]))
    print(f"plot: {run_dir / 'lr_find.png'}")
    return 0


def _rule() -> str:
    from trainctl.engine.lr_range import RULE

    return RULE


def _range_test(cfg: DictConfig, options: Any) -> Any:
    """Build the run as `trainctl train` would (init_from and model.freeze included) and test it."""
    import torch

    from trainctl.components import build_optimizer
    from trainctl.data.catalog import build_dataset
    from trainctl.device import config_device
    from trainctl.engine.build import build_model_parts, deterministic_mode
    from trainctl.engine.finetune import prepare_model
    from trainctl.engine.lr_range import endless, range_test

    device = config_device(cfg.device)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = build_dataset(cfg.dataset, cfg.seed).to(device)
    with deterministic_mode(cfg.trainer.deterministic):
        parts = build_model_parts(cfg, data, device)
        prepare_model(cfg, parts.model, device)
        optimizer = build_optimizer(cfg.optimizer, parts.model)
        batches = endless(data.train, cfg.trainer.batch_size, data.train_transform, cfg.seed)
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.trainer.precision == "fp16")
        return range_test(parts.model, optimizer, parts.loss_fn, batches, parts.settings, options,
                          cfg.trainer.gradient_clip_val, cfg.trainer.gradient_clip_algorithm == "norm", scaler)


def _write(cfg: DictConfig, options: Any, test: Any) -> Path:
    """The run directory: the curve as PNG, CSV and TensorBoard scalars, the result as JSON, the config."""
    from trainctl.config.targets import component_name
    from trainctl.files import create_run_dir, write_json

    hint = f"lr-find_{component_name(cfg.model)}-{component_name(cfg.dataset)}".replace("/", "_")
    run_dir = create_run_dir(hint=hint)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    with open(run_dir / "lr_find.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "lr", "loss", "smoothed_loss"])
        writer.writerows(zip(range(1, len(test.lrs) + 1), test.lrs, test.losses, test.smoothed))
    write_json(run_dir / "lr_find.json", {
        "suggested_lr": test.suggestion, "rule": _rule(), "minimum_lr": test.minimum_lr,
        "steps_run": len(test.losses), "stopped": test.stopped, **dataclasses.asdict(options)})
    picture = _render(_plot(test, cfg))
    from PIL import Image

    Image.fromarray(picture).save(run_dir / "lr_find.png")
    _tensorboard(run_dir, test, picture)
    return run_dir


def _plot(test: Any, cfg: DictConfig) -> Any:
    """Loss against lr on a log axis: each step's loss faint, the smoothed loss bold, the suggestion marked."""
    from matplotlib.figure import Figure

    from trainctl.config.targets import component_name

    figure = Figure(figsize=(7, 4.5), dpi=120, layout="constrained")
    ax = figure.add_subplot()
    ax.plot(test.lrs, test.losses, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    ax.plot(test.lrs, test.smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
    ax.axvline(test.suggestion, color="tab:red", linestyle="--",
               label=f"suggested optimizer.lr={test.suggestion:.2g}")
    ax.plot([test.suggestion], [test.smoothed[test.suggestion_index]], "o", color="tab:red")
    ax.set_xscale("log")
    low, high = min(test.smoothed), max(test.smoothed[0], *test.smoothed[: test.suggestion_index + 1])
    ax.set_ylim(low - 0.1 * (high - low), high + 0.25 * (high - low))  # the diverging tail is cut off
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"lr-find: {component_name(cfg.model)} on {component_name(cfg.dataset)}, "
                 f"{component_name(cfg.optimizer)}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return figure


def _render(figure: Any) -> Any:
    """The figure as an [H, W, 3] uint8 array, drawn once by the Agg canvas (no pyplot, no display)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _tensorboard(run_dir: Path, test: Any, picture: Any) -> None:
    """The curve by step (`lr_find/loss`, `lr_find/smoothed_loss`, `lr_find/lr`) and the plot as an image."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir)) as writer:
        for step, (lr, loss, smoothed) in enumerate(zip(test.lrs, test.losses, test.smoothed), start=1):
            writer.add_scalar("lr_find/loss", loss, step)
            writer.add_scalar("lr_find/smoothed_loss", smoothed, step)
            writer.add_scalar("lr_find/lr", lr, step)
        writer.add_image("lr_find/plot", picture, 0, dataformats="HWC")
        writer.add_text("lr_find/suggestion", f"suggested optimizer.lr={test.suggestion:.3g} ({_rule()}); "
                                              f"{test.stopped}", 0)
