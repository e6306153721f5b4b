"""One training run: `fit(cfg, run_dir, device, callbacks) -> result`.

Read top to bottom: build everything from the config (or restore it from a checkpoint), then per epoch train
(step.py) → validate → announce `validation_end` and `epoch_end` to the callbacks (checkpointing, logging, early
stopping, pruning); finally evaluate the best checkpoint on the test split and write metrics.json. Nothing is
lost on the way: SIGINT/SIGTERM stop at a step boundary (the checkpoint callback saves on the `exception`
event), and a non-finite loss stops the run before it can overwrite a good checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig

from trainctl import clock
from trainctl.components.naming import upgrade_state_dict
from trainctl.data.catalog import build_dataset
from trainctl.data.splits import DataBundle, ceil_div
from trainctl.engine.build import build_trainer, one_thread_when_tiny
from trainctl.engine.capture import restore
from trainctl.engine.diagnosis import diagnose
from trainctl.engine.events import Callback, EpochEnd, StopTraining, after_training
from trainctl.engine.distributed import Single
from trainctl.engine.signals import Interrupted
from trainctl.engine.step import Trainer, evaluate, evaluated_samples, train_one_epoch
from trainctl.errors import UserError
from trainctl.files import write_json
from trainctl.metrics import REGRESSION, check_task_metrics, objectives
from trainctl.terminal import print_summary

log = logging.getLogger("trainctl")


def fit(cfg: DictConfig, run_dir: Path, device: torch.device, callbacks: Sequence[Callback],
        checkpoint: dict[str, Any] | None = None, data: DataBundle | None = None,
        group: Single | None = None) -> dict[str, Any]:
    """One training run into `run_dir` (a resumed one when `checkpoint` is given); in a data-parallel run, this
    process's part of it (`group`)."""
    group = group or Single()
    clock.begin_run()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    data = (data or build_dataset(cfg.dataset, cfg.seed)).to(device)
    clock.mark("data")
    with contextlib.ExitStack() as scope:
        with group.graceful_stop() as stop:
            t = build_trainer(cfg, data, device, run_dir, group.main_only(callbacks), stop, group)
            clock.mark("model build")
            scope.enter_context(one_thread_when_tiny(t.raw_model, cfg.trainer.batch_size, data.spec.input_shape,
                                                     device))
            _start(t, checkpoint)
        return _finish(t)


def _start(t: Trainer, checkpoint: dict[str, Any] | None) -> None:
    """Restore (resuming), check, announce the start and train every epoch."""
    cfg = t.cfg
    t.dist.seed_process(cfg.seed)
    t.checkpoints.remove_stale_temps()
    check_task_metrics(cfg, t.data.spec.task, t.data.spec.num_classes)
    check_single_sample_batches(t)
    if checkpoint is not None:
        try:
            restore(t, checkpoint)
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as e:  # a state this run cannot take
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"the checkpoint of {t.run_dir} does not fit this run ({type(e).__name__}: {first[:300]}): "
                            "it was not written by trainctl for this model and optimizer, or it was altered; "
                            "resume from another checkpoint, or train anew") from None
        t.resumed = True
    detect = torch.autograd.detect_anomaly() if cfg.trainer.detect_anomaly else contextlib.nullcontext()
    try:
        t.events.emit("on_fit_start", t)
        clock.mark("summary, writers, log")
        t.events.step_listeners.append(_FirstStep())
        t.fit_started = time.perf_counter()
        with detect:
            _epochs(t)
    except StopTraining as stop_training:
        t.state.status = stop_training.status
        log.info("training stopped after epoch %d: %s", t.state.epoch, stop_training)
    except BaseException as error:
        t.events.exception(t, error)  # interrupted or failed: callbacks save what must be saved, flush logs
        raise


class _FirstStep(Callback):
    """Marks the end of the run's first optimizer step (lazy initialisation shows there), then stops listening:
    the loop finds the step listeners empty again."""

    def on_train_step(self, trainer: Trainer) -> None:
        clock.mark("first step")
        trainer.events.step_listeners.remove(self)


def check_single_sample_batches(t: Trainer) -> None:
    """Batch norm cannot train on a batch of one sample (torch raises mid-epoch): say so before training. In a
    data-parallel run, on one process's part of each batch (without trainer.sync_batchnorm)."""
    world = 1 if t.cfg.trainer.sync_batchnorm else t.dist.world
    n, size = ceil_div(len(t.data.train), world), t.cfg.trainer.batch_size // world
    last = n - (ceil_div(n, size) - 1) * size  # samples in the epoch's last batch
    reaches_last = t.batches >= ceil_div(n, size) and not t.cfg.trainer.overfit_batches
    norms = [m for m in t.raw_model.modules() if isinstance(m, torch.nn.BatchNorm1d)]  # one value per channel
    if norms and (size == 1 or (last == 1 and reaches_last)):
        culprit = "trainer.batch_size=1" if size == 1 else (
            f"the last batch of each epoch has 1 sample ({n} training samples, trainer.batch_size={size})")
        raise UserError(f"batch norm cannot train on a batch of one sample, and {culprit}: choose a "
                        "trainer.batch_size that leaves no batch of one, or a model without batch norm.")


def _epochs(t: Trainer) -> None:
    s = t.state
    for epoch in range(s.epoch, t.cfg.trainer.epochs):
        t.events.emit("on_epoch_start", t, epoch + 1)
        train_metrics, throughput = train_one_epoch(t, epoch)
        val_metrics = evaluate(t.eval_model, t.dist.shard(t.data.val), t.data, t.loss_fn,
                               t.cfg.trainer.eval_batch_size, t.settings, max_batches=t.cfg.trainer.max_eval_batches,
                               reduce=t.dist.reduce)
        metrics = {**{f"train/{k}": v for k, v in train_metrics.items()},
                   **{f"val/{k}": v for k, v in val_metrics.items()}, "lr": t.optimizer.param_groups[0]["lr"]}
        s.epoch, s.batches_in_epoch, s.partial = epoch + 1, 0, None
        s.history.append({"epoch": epoch + 1, **metrics})
        s.throughputs.append(throughput)
        t.schedule.step_epoch(metrics)
        end = EpochEnd(epoch + 1, metrics, throughput)
        stopping: StopTraining | None = None
        try:
            t.events.emit("on_validation_end", t, end)
            t.events.emit("on_epoch_end", t, end)
        except StopTraining as e:
            stopping = e
        decided = t.dist.broadcast(stopping and (str(stopping), stopping.status))  # rank 0's callbacks decide
        if decided is not None:
            raise StopTraining(*decided)
        if t.stop.settled():
            raise Interrupted(t.stop.signum)


def target_variance(data: DataBundle) -> float | None:
    """Variance of a regression's training targets: the mse of always predicting their mean, which turns mse
    into R² for the verdict. One host sync, at fit end; None for classification or streamed splits."""
    y = getattr(data.train, "y", None)
    if data.spec.task != REGRESSION or not isinstance(y, torch.Tensor) or y.numel() < 2:
        return None
    return float(y.float().var(unbiased=False))


def _finish(t: Trainer) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split (used only here), judge the curves (the verdict, logged
    and kept under `diagnosis`) and write metrics.json."""
    cfg, s = t.cfg, t.state
    where = "cpu" if t.dist.enabled else t.device  # sent as pickled tensors: never to another process's GPU
    best = t.checkpoints.load("best", map_location=where) if t.dist.is_main else None
    # Rank 0's best weights for every process: other machines of a multi-node run may not see its disk.
    best = t.dist.broadcast(best and {"model": best["model"], "ema": best.get("ema")})
    model = t.raw_model
    # best.pt may predate a resume, and this version's layer names: read by position then
    model.load_state_dict(upgrade_state_dict(model, best["model"]))
    if t.ema is not None:
        t.ema.load_state_dict(upgrade_state_dict(t.ema.model, best["ema"]))
        model = t.ema.model
    best_epoch_metrics = s.history[s.best_epoch - 1]
    batch_size, max_batches = cfg.trainer.eval_batch_size, cfg.trainer.max_eval_batches
    test: dict[str, Any] = {}
    clock.mark("training and validation")
    if s.status != "pruned":  # a pruned sweep trial is never reported, so its test pass would be wasted time
        test = evaluate(model, t.dist.shard(t.data.test), t.data, t.loss_fn, batch_size, t.settings, per_class=True,
                        max_batches=max_batches, reduce=t.dist.reduce)
        # How many samples the metrics cover, so a partial pass (trainer.max_eval_batches) is never taken
        # for a full one.
        test["samples"] = evaluated_samples(t.data.test, batch_size, max_batches)
    names = objectives(cfg.objective)
    single = isinstance(cfg.objective, str)
    result: dict[str, Any] = {k: v for k, v in best_epoch_metrics.items() if k.startswith("val/")}
    result["val/samples"] = evaluated_samples(t.data.val, batch_size, max_batches)
    result.update({f"test/{k}": v for k, v in test.items()})
    result.update({k: v for k, v in s.history[-1].items() if k.startswith("train/")})
    result.update({
        "status": s.status,
        "epochs": s.epoch,
        "best_epoch": s.best_epoch,
        "objective": names[0] if single else names,
        "objective_value": best_epoch_metrics[names[0]] if single else [best_epoch_metrics[o] for o in names],
        "throughput/train_images_per_s": sum(s.throughputs) / max(len(s.throughputs), 1),
        # Wall time from the process's start (a run started otherwise: from its own set-up, `clock.begin_run`)
        # to the first training step, and from there to the test metrics in hand (validation and checkpoints
        # included): the time-to-accuracy figure. time/finish_s, the rest, is added at the end.
        "time/startup_s": t.fit_started - clock.run_origin(),
        "time/train_to_test_s": time.perf_counter() - t.fit_started,
    })
    clock.mark("test")
    tested = time.perf_counter()
    steps = cfg.trainer.max_steps_per_epoch
    cut_short = f"trainer.max_steps_per_epoch={steps}" if steps else None
    verdict = after_training("the verdict", lambda: diagnose(s.history, t.data.spec.task, t.data.spec.num_classes,
                                                             target_variance(t.data), s.status, cut_short=cut_short))
    if verdict is not None:
        log.info("%s", verdict.line())
    result["diagnosis"] = verdict.as_dict() if verdict is not None else {"verdict": "unknown",
                                                                            "reason": "the verdict failed: see train.log"}
    result["history"] = s.history
    if t.dist.is_main:  # the result is safe on disk and in the log before any picture is drawn
        write_json(t.run_dir / "metrics.json", result)
        log_test_line(t, result)
    t.events.emit("on_fit_end", t, result)
    clock.mark("pictures, writers")
    result["time/finish_s"] = time.perf_counter() - tested
    result["time/phases"] = clock.phases()
    if t.dist.is_main:
        write_json(t.run_dir / "metrics.json", result)
        print_summary(_shown(result), t.run_dir)
    return result


def log_test_line(t: Trainer, result: dict[str, Any]) -> None:
    """The test metrics in one log line, with where the run's outputs are."""
    test = {k: v for k, v in result.items() if k.startswith("test/") and isinstance(v, float)}
    if not test:  # a pruned sweep trial has no test pass
        log.info("%s after epoch %d (best epoch %d); outputs in %s", result.get("status", "stopped"),
                 result["epochs"], result["best_epoch"], t.run_dir)
        return
    shown = "  ".join(f"{k.removeprefix('test/')} {v:.4f}" for k, v in test.items())
    n_test, evaluated = len(t.data.test), result.get("test/samples")
    partial = (f" on {evaluated} of {n_test} samples (trainer.max_eval_batches="
               f"{t.cfg.trainer.max_eval_batches})" if evaluated is not None and evaluated < n_test else "")
    log.info("test %s%s (best epoch %d); outputs in %s", shown, partial, result["best_epoch"], t.run_dir)


def _shown(result: dict[str, Any]) -> dict[str, Any]:
    """The summary table's rows: the time keys last, in the order the run spent them."""
    times = ("time/startup_s", "time/train_to_test_s", "time/finish_s")
    return {**{k: v for k, v in result.items() if k not in times}, **{k: result[k] for k in times if k in result}}
