"""A whole training command, without Hydra: check the config, find the device and the data, resume or create
the run directory, then fit once (or once per fold). Callbacks come from the caller (`trainctl.api.train`
adds the defaults), made fresh for each fit because each fold is a run of its own."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig

from trainctl.config.targets import component_name
from trainctl.config.trust import ignored_targets_notice, stored_targets
from trainctl.config.validate import validate
from trainctl.data.locate import check_available
from trainctl.device import warm_up_in_background
from trainctl.engine.build import deterministic_mode
from trainctl.engine.checkpoint import check_resumable, load_checkpoint
from trainctl.engine.distributed import Single, is_peer_failure, peer_failure, setup
from trainctl.engine.events import Callback
from trainctl.engine.finetune import init_source
from trainctl.engine.lazy_compiler import compiler_unloaded
from trainctl.engine.fit import fit
from trainctl.engine.resume import check_same_run, checkpoint_path, run_dir_of
from trainctl.files import create_run_dir, lock_run_dir, note_writer, unlock_run_dir
from trainctl.terminal import console

MakeCallbacks = Callable[[], Sequence[Callback]]


def run(cfg: DictConfig, run_dir: Path | str | None, make_callbacks: MakeCallbacks) -> dict[str, Any]:
    """Train as the config says; write checkpoints, logs and metrics.json into `run_dir` (a new one if None).
    In a data-parallel run every process calls this; rank 0's run directory is everyone's."""
    validate(cfg)
    check_available(cfg.dataset)
    init_source(cfg)  # a missing init_from checkpoint (or one beside resume=) is refused before any directory
    group = setup(cfg)
    try:
        return _run(cfg, run_dir, make_callbacks, group)
    except Exception as error:
        if group.enabled and is_peer_failure(error):
            raise peer_failure(error, group, run_dir) from None
        raise
    finally:
        group.close()


def _run(cfg: DictConfig, run_dir: Path | str | None, make_callbacks: MakeCallbacks, group: Single
         ) -> dict[str, Any]:
    device = group.device(cfg)
    warm_up_in_background(device)  # CUDA's start-up overlaps with what follows (checkpoint, data, model)
    checkpoint = None
    if cfg.resume:
        path = checkpoint_path(cfg.resume)
        checkpoint = load_checkpoint(path)  # on the CPU: restoring copies each state where it belongs
        check_resumable(checkpoint, path)
        check_same_run(checkpoint["config"], cfg, path)
        notice = ignored_targets_notice(run_dir_of(path), stored_targets(checkpoint["config"]), cfg, path,
                                        "The resumed run is built from its checked overrides and your command line.")
        if notice and group.is_main:
            logging.getLogger("trainctl").warning("resume: %s", notice)
        run_dir = Path(run_dir or run_dir_of(path)) if group.is_main else None
        finished = finished_metrics(checkpoint, cfg, Path(group.broadcast(str(run_dir))), quiet=not group.is_main)
        if finished is not None:
            return finished
    hint = f"{component_name(cfg.model)}-{component_name(cfg.dataset)}".replace("/", "_")
    if group.is_main:
        run_dir = Path(run_dir) if run_dir is not None else create_run_dir(hint=hint)
        run_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(group.broadcast(str(run_dir)))  # the other processes compose their own name: rank 0's wins
    # One writer per run directory: `trainctl train` took the lock before Hydra wrote there (then this is a no-op
    # and the lock lasts the process); a multirun's job or a call from Python takes it here, for this run.
    locked = lock_run_dir(run_dir) if group.is_main else False
    if group.is_main:
        note_writer(run_dir)
    # CUDA graphs (cuda_graphs auto or true) can only apply on CUDA: a CPU run compiles nothing either way
    compiles = bool(cfg.trainer.compile) or (device.type == "cuda" and cfg.trainer.cuda_graphs is not False)
    try:
        with deterministic_mode(cfg.trainer.deterministic), compiler_unloaded(compiles):
            if cfg.cv.folds > 1:
                from trainctl.engine.crossval import cross_validate

                return cross_validate(cfg, run_dir, device, make_callbacks)
            return fit(cfg, run_dir, device, make_callbacks(), checkpoint, group=group)
    finally:
        if locked:
            unlock_run_dir(run_dir)


def finished_metrics(checkpoint: dict[str, Any], cfg: DictConfig, run_dir: Path, quiet: bool = False
                     ) -> dict[str, Any] | None:
    """A resumed run that already trained all its epochs and wrote its metrics.json is done: say so and return
    those metrics, writing nothing (testing it again would only repeat its result). None when there is work
    left: more epochs (`trainer.epochs` raised), an unfinished epoch, or the final test pass a kill cut short."""
    epochs, target = checkpoint.get("epoch", 0), cfg.trainer.epochs
    metrics_file = run_dir / "metrics.json"
    if epochs < target or checkpoint.get("batches_in_epoch", 0) or not metrics_file.is_file():
        return None
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError):
        return None  # unreadable: the final pass writes it again
    if not isinstance(metrics, dict) or metrics.get("epochs") != epochs:
        return None  # written before the checkpoint's last epoch (or by another run): out of date
    if quiet:
        return metrics
    console.print(
        f"{run_dir} is already finished: it trained {epochs} epoch(s) (trainer.epochs={target}), best epoch "
        f"{metrics.get('best_epoch', '?')}; its metrics are in {metrics_file}. Nothing to do: to train it longer, "
        f"resume with trainer.epochs=N (N > {epochs}).", soft_wrap=True, markup=False, highlight=False)
    return metrics
