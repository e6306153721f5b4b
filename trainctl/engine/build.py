"""Building a run from its config: the one place both `train` and `eval` get their model, loss and step
settings from, so a checkpoint is evaluated exactly as validation ran during training."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.components import build_loss, build_model, build_optimizer, build_scheduler
from trainctl.data.splits import DataBundle, ceil_div
from trainctl.engine.distributed import Single
from trainctl.engine.ema import EMA
from trainctl.engine.events import Callback, Events
from trainctl.engine.finetune import prepare_model
from trainctl.engine.signals import GracefulStop
from trainctl.engine.graph_step import uses_compiled_graphs
from trainctl.engine.step import StepSettings, Trainer, batches_per_epoch
from trainctl.data.labels import with_label_transforms
from trainctl.errors import UserError

log = logging.getLogger("trainctl")


@dataclass
class ModelParts:
    """What evaluating a config needs: the model on its device, the loss, and how batches run."""

    model: nn.Module
    loss_fn: nn.Module
    settings: StepSettings


def build_model_parts(cfg: DictConfig, data: DataBundle, device: torch.device) -> ModelParts:
    model = build_model(cfg.model, data.spec, batch_size=cfg.trainer.batch_size).to(device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    labels = getattr(data.train, "y", None)  # in-memory splits only: counted for loss.weight=balanced
    loss_fn = build_loss(cfg.loss, data.spec, labels if isinstance(labels, torch.Tensor) else None)
    loss_fn = with_label_transforms(loss_fn, cfg.dataset.get("label_transforms"))  # dataset.label_transforms
    return ModelParts(model, loss_fn.to(device), StepSettings(cfg.trainer, device))


def build_trainer(cfg: DictConfig, data: DataBundle, device: torch.device, run_dir: Path,
                  callbacks: Sequence[Callback] = (), stop: GracefulStop | None = None,
                  group: Single | None = None) -> Trainer:
    group = group or Single()
    check_stateful(cfg, data, group)
    parts = build_model_parts(cfg, data, device)
    model = parts.model
    if group.enabled and cfg.trainer.sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same parameters and state-dict keys
    prepare_model(cfg, model, device)  # init_from weights, model.freeze: before the optimizer and the EMA copy
    optimizer = build_optimizer(cfg.optimizer, model)
    batches = batches_per_epoch(cfg.trainer, len(data.train))
    schedule = build_scheduler(cfg.scheduler, optimizer, cfg.trainer.epochs,
                               ceil_div(batches, cfg.trainer.grad_accum_steps))
    return Trainer(
        # DDP wraps what trains; evaluation calls the model itself, since processes evaluate different numbers
        # of batches and DDP's forward may start a collective operation (buffer broadcast) on each call.
        cfg=cfg, model=compiled(cfg.trainer, group.wrap(model), device), raw_model=model,
        eval_forward=compiled(cfg.trainer, model, device) if group.enabled else None,
        optimizer=optimizer, schedule=schedule, loss_fn=parts.loss_fn, data=data, settings=parts.settings,
        run_dir=run_dir, events=Events(callbacks), stop=stop or GracefulStop(),
        ema=EMA(model, cfg.trainer.ema_decay) if cfg.trainer.ema_decay else None,
        scaler=torch.amp.GradScaler(device.type) if cfg.trainer.precision == "fp16" else None,
        dist=group,
    )


def compiled(trainer_cfg: DictConfig, model: nn.Module, device: torch.device) -> nn.Module:
    """The model as the loop calls it: itself, or compiled (`trainer.compile`). On CUDA with graphs allowed
    (`trainer.cuda_graphs` auto or true) compilation uses mode="reduce-overhead", which records CUDA graphs of
    the model, with static shapes (the short last batch and evaluation get graphs of their own). Without
    `trainer.compile`, CUDA graphs are whole-step ones, captured by the loop (`trainctl.engine.cuda_graph`)."""
    if uses_compiled_graphs(trainer_cfg, device):
        return torch.compile(model, mode="reduce-overhead", dynamic=False)
    return torch.compile(model) if trainer_cfg.compile else model


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """The run's choice of GPU algorithms, restored afterwards: deterministic ones only (torch errors on ops that
    have none), or else cuDNN's autotuner, which times the candidate convolution kernels for each new shape and
    keeps the fastest. Its choice can differ between processes, so bit-identical reruns and resumes of a
    convnet on a GPU need trainer.deterministic=true (on the CPU they are bit-identical either way)."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    _set_deterministic(enabled)
    torch.backends.cudnn.benchmark = not enabled
    try:
        yield
    except RuntimeError as error:
        if "CUBLAS_WORKSPACE_CONFIG" in str(error):  # cuBLAS read it at this process's first matrix product
            raise UserError(
                "trainer.deterministic=true on CUDA needs the environment variable CUBLAS_WORKSPACE_CONFIG=:4096:8 "
                "before the process's first CUDA matrix product (trainctl's command line sets it for each run; "
                "in your own Python, set it at the start of the process).") from None
        if "does not have a deterministic implementation" not in str(error):
            raise
        op = str(error).split(" does not have", 1)[0].strip()
        raise UserError(
            f"trainer.deterministic=true, but {op} has no deterministic implementation on this device, so the "
            "run stopped. Choose a model without that layer, train on another device, or set "
            "trainer.deterministic=false.") from None
    finally:
        _set_deterministic(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def _set_deterministic(enabled: bool) -> None:
    """`torch.use_deterministic_algorithms`, called only to change the setting: the call imports torch's
    compiler stack (torch._inductor, about 2 s of CPU) to tell it too, which a run that keeps the default
    never needs."""
    if torch.are_deterministic_algorithms_enabled() != enabled:
        torch.use_deterministic_algorithms(enabled)


# A CPU step below this many multiply-adds (bounded above by parameters x batch x input size) runs on one thread:
# its operations are too small to share, and the other threads' waiting (OpenMP spins between operations) would
# burn more CPU than the training itself.
TINY_STEP = 1 << 20


@contextlib.contextmanager
def one_thread_when_tiny(model: nn.Module, batch_size: int, input_shape: Sequence[int], device: torch.device
                         ) -> Iterator[None]:
    """torch on one CPU thread while a model this small trains or evaluates, then as many as before."""
    previous = torch.get_num_threads()
    bound = sum(p.numel() for p in model.parameters()) * batch_size * math.prod(input_shape)
    if device.type != "cpu" or bound >= TINY_STEP or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_stateful(cfg: DictConfig, data: DataBundle, group: Single) -> None:
    """`model.stateful=true` carries the hidden state from one training batch to the next: refused where rows of
    consecutive batches do not continue each other (shuffled data, another batch size, several processes)."""
    if not cfg.model.get("stateful"):
        return
    streams = getattr(data.train, "streams", None)
    if streams is None:
        raise UserError(f"model.stateful=true carries the hidden state from batch to batch, but dataset="
                        f"{cfg.dataset.get('name') or cfg.dataset.get('_target_')} shuffles its training samples, so "
                        "the next batch does not continue this one: use ordered windows of continuous signals "
                        "(dataset=sine dataset.streams=N trainer.batch_size=N), or model.stateful=false")
    if cfg.trainer.batch_size != streams:
        raise UserError(f"model.stateful=true needs each row of a batch to continue the same row of the batch "
                        f"before: set trainer.batch_size={streams} (dataset.streams={streams})")
    if group.enabled:
        raise UserError("model.stateful=true trains in one process: each process would carry another part of the "
                        "streams; drop trainer.devices")
