"""A whole training command, without Hydra: check the config, find the device and the data, resume or create
the run directory, then fit once (or once per fold). Callbacks come from the caller (`trainctl.api.train`
adds the defaults), made fresh for each fit because each fold is a run of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig

from trainctl.components.targets import component_name
from trainctl.config.validate import validate
from trainctl.data.locate import check_available
from trainctl.device import select_device
from trainctl.engine.build import deterministic_mode
from trainctl.engine.checkpoint import load_checkpoint
from trainctl.engine.events import Callback
from trainctl.engine.fit import fit
from trainctl.engine.resume import check_same_run, checkpoint_path, run_dir_of
from trainctl.files import create_run_dir

MakeCallbacks = Callable[[], Sequence[Callback]]


def run(cfg: DictConfig, run_dir: Path | str | None, make_callbacks: MakeCallbacks) -> dict[str, Any]:
    """Train as the config says; write checkpoints, logs and metrics.json into `run_dir` (a new one if None)."""
    validate(cfg)
    check_available(cfg.dataset)
    device = select_device(cfg.device.name)
    checkpoint = None
    if cfg.resume:
        path = checkpoint_path(cfg.resume)
        checkpoint = load_checkpoint(path, map_location=device)
        check_same_run(checkpoint["config"], cfg, path)
        run_dir = run_dir or run_dir_of(path)
    hint = f"{component_name(cfg.model)}-{component_name(cfg.dataset)}".replace("/", "_")
    run_dir = Path(run_dir) if run_dir is not None else create_run_dir(hint=hint)
    run_dir.mkdir(parents=True, exist_ok=True)
    with deterministic_mode(cfg.trainer.deterministic):
        if cfg.cv.folds > 1:
            from trainctl.engine.crossval import cross_validate

            return cross_validate(cfg, run_dir, device, make_callbacks)
        return fit(cfg, run_dir, device, make_callbacks(), checkpoint)
