"""Whole-step CUDA graphs for a training run (`trainer.cuda_graphs=auto|true|false`): what the captured step
does, what it needs from the optimizer and the schedule, and when a run must stay eager.

The step (`make_body`): forward, loss, backward, clipping, the optimizer's and the gradient scaler's step, the
EMA, and the batch's two metric values (`write_batch_values`, copied into the epoch's slots after each replay).
It stays outside the graph: the on-device gather and augmentation that make the batch (their generators are the
epoch's own), the learning-rate schedule (computed on the host; each group's lr is mirrored into a device tensor
that the captured optimizer reads, one fill when it changes) and the step counter. Evaluation runs eagerly: a
few large batches, where launches cost little.

Exactness: the warm-up runs of each kind execute the same body eagerly, so a run's results do not depend on
where it was resumed (each process captures its graphs afresh after restoring). Against the eager loop the
results agree to float rounding, not to the bit: the captured optimizer reads its lr from a tensor, and
gradients are zeroed and added to rather than dropped (a graph writes the same memory at every replay).

Runs that stay eager say why once in the log: not on CUDA, `trainer.compile` (torch.compile's reduce-overhead
mode records graphs of the model instead), data-parallel, anomaly detection, profiling, an optimizer without a
capturable step with a tensor lr, fp16's scaler with a non-fused optimizer (it checks for overflow on the host),
a schedule that cycles the momentum, Python hooks in the step; and at run time, in `StepGraphs`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from typing import Any, Iterator

import torch

from trainctl.components.losses import reduces_by_sum
from trainctl.engine import cuda_graph
from trainctl.engine.accumulator import write_batch_values
from trainctl.engine.cuda_graph import Body, StepGraphs, Values

# trainctl.engine.step.Trainer, which imports this module: naming the class here would close an import cycle
Trainer = Any

log = logging.getLogger("trainctl")


def graph_mode(value: Any) -> str:
    """`trainer.cuda_graphs` as one word: auto (null too), true or false."""
    if value is None or value == "auto":
        return "auto"
    return "true" if value else "false"


def uses_compiled_graphs(trainer_cfg: Any, device: torch.device) -> bool:
    """`trainer.compile=true` with graphs allowed, on CUDA: torch.compile(mode="reduce-overhead") records its
    own graphs of the model (the path trainctl had before whole-step graphs), and the step runs eagerly."""
    # .get: settings rebuilt from an older run's config (eval, predict) may lack either key
    return (bool(trainer_cfg.get("compile")) and graph_mode(trainer_cfg.get("cuda_graphs")) != "false"
            and device.type == "cuda")


class LearningRates:
    """Each parameter group's lr as a device tensor, which the captured optimizer step reads: the schedule keeps
    setting floats (as checkpoints and logs see them), and `sync` fills a tensor only when its float changed."""

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
        self.groups = optimizer.param_groups
        self.floats = [float(g["lr"]) for g in self.groups]
        self.tensors = [torch.tensor(v, dtype=torch.float32, device=device) for v in self.floats]

    def sync(self) -> None:
        for k, group in enumerate(self.groups):
            if group["lr"] != self.floats[k]:
                self.floats[k] = float(group["lr"])
                self.tensors[k].fill_(self.floats[k])

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The tensors (and `capturable`) in the groups while the step's Python runs; floats again after, so
        that checkpoints are those of an eager run."""
        saved = [(g["lr"], g.get("capturable")) for g in self.groups]
        for group, tensor in zip(self.groups, self.tensors):
            group["lr"] = tensor
            if "capturable" in group:
                group["capturable"] = True
        try:
            yield
        finally:
            for group, (lr, capturable) in zip(self.groups, saved):
                group["lr"] = lr
                if capturable is not None:
                    group["capturable"] = capturable


def optimizer_blocker(optimizer: torch.optim.Optimizer) -> str | None:
    """Adam and AdamW (fused, or capturable) and fused SGD step inside a graph with a tensor lr; the others
    either read the lr on the host (`.item()`) or have no capturable form."""
    if any(isinstance(g["lr"], torch.Tensor) for g in optimizer.param_groups):
        return "the optimizer's lr is a tensor already (trainctl mirrors float lrs into the graph)"
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return None
    if isinstance(optimizer, torch.optim.SGD) and optimizer.defaults.get("fused"):
        return None
    name = type(optimizer).__name__ + (" without fused kernels" if isinstance(optimizer, torch.optim.SGD) else "")
    return (f"optimizer {name} has no step that runs inside a CUDA graph with a changing lr (Adam, AdamW and "
            "fused SGD have one)")


def blocker(t: Trainer) -> str | None:
    """Why this run's step cannot be captured, known before it starts; None when it can."""
    cfg = t.cfg.trainer
    if t.device.type not in cuda_graph.CAPTURING_DEVICES:
        return f"CUDA graphs need a CUDA device and this run is on {t.device.type}"
    if cfg.compile:
        return "trainer.compile=true: torch.compile(mode=reduce-overhead) records graphs of the model instead"
    if t.dist.world > 1:
        return "a data-parallel run (trainer.devices > 1): its gradient all-reduce is not captured"
    if cfg.detect_anomaly:
        return "trainer.detect_anomaly=true checks every operation on the host"
    if cfg.profile:
        return "trainer.profile=true records the step kernel by kernel (a replayed graph is one opaque launch)"
    problem = optimizer_blocker(t.optimizer)
    if problem:
        return problem
    if t.scaler is not None and not getattr(t.optimizer, "_step_supports_amp_scaling", False):
        return (f"precision=fp16's gradient scaler checks for overflow on the host before each {type(t.optimizer).__name__} "
                "step (fused Adam, AdamW and SGD check on the device; precision=bf16 needs no scaler)")
    if hooked(t):
        return ("Python hooks run inside the step (a callback's, such as tensorboard.histograms, or the model's "
                "own): they would run once, at the capture, and never again")
    scheduler = t.schedule.scheduler
    if t.schedule.per_batch and getattr(scheduler, "cycle_momentum", False):
        return (f"the {type(scheduler).__name__} schedule changes the momentum every step, which a captured "
                "optimizer step would keep fixed (scheduler.cycle_momentum=false allows graphs)")
    return None


def hooked(t: Trainer) -> bool:
    """Whether Python hooks run inside the step: on the optimizer's step, or on the model's modules."""
    optimizer = t.optimizer
    if getattr(optimizer, "_optimizer_step_pre_hooks", None) or getattr(optimizer, "_optimizer_step_post_hooks", None):
        return True
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return any(getattr(m, name, None) for m in t.model.modules() for name in names)


def make_body(t: Trainer) -> Body:
    """The step as `StepGraphs` runs it. Gradients stay allocated between steps (a graph writes into the same
    memory on every replay): the first micro-batch of each optimizer step zeroes them instead of dropping them."""
    params = [p for p in t.raw_model.parameters() if p.requires_grad]
    accum, settings, loss_fn, scaler = t.cfg.trainer.grad_accum_steps, t.settings, t.loss_fn, t.scaler
    task, loss_is_sum = t.data.spec.task, reduces_by_sum(t.loss_fn)

    def body(x: torch.Tensor, y: torch.Tensor, first: bool, steps: bool) -> Values:
        if first:
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                torch._foreach_zero_(grads)
        with settings.autocast(cache=False):  # autocast's weight cache cannot outlive a capture
            out = t.model(settings.prepare(x))
            loss = loss_fn(out, y)
        scaled = loss / accum if accum > 1 else loss
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        values = torch.empty((), device=y.device), torch.empty((), device=y.device)
        write_batch_values(task, loss_is_sum, out, y, loss, *values)
        if steps:
            t.apply_gradients()
        return values

    return body


def steps_on_device(optimizer: torch.optim.Optimizer) -> None:
    """A capturable optimizer counts its steps on the parameters' device; a checkpoint restored into a
    non-fused one (saved, as always, with capturable off) brings them back on the CPU."""
    for param, state in optimizer.state.items():
        step = state.get("step")
        if isinstance(step, torch.Tensor) and step.device != param.device:
            state["step"] = step.to(param.device)


def reset_scaler(scaler: torch.amp.GradScaler | None) -> None:
    """A failed capture leaves the scaler midway through a step (unscaled, not updated): forget that state so
    the eager rerun of the batch starts clean. torch keeps it in a private field with no public reset."""
    if scaler is not None:
        from torch.amp.grad_scaler import _refresh_per_optimizer_state

        scaler._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)


def step_graphs(t: Trainer) -> StepGraphs | None:
    """The run's step graphs, made at its first epoch (after any restore), or None when the step runs eagerly;
    the reason is logged once."""
    mode = graph_mode(t.cfg.trainer.cuda_graphs)

    def announce(reason: str) -> None:
        if mode == "true":
            log.warning("trainer.cuda_graphs=true, but the step runs eagerly: %s (set trainer.cuda_graphs=false "
                        "or auto to silence this)", reason)
        elif t.device.type in cuda_graph.CAPTURING_DEVICES:
            log.info("CUDA graphs: the step runs eagerly: %s", reason)

    if mode == "false":
        return None
    reason = blocker(t)
    if reason is not None:
        announce(reason)
        return None
    rates = LearningRates(t.optimizer, t.device)
    t.optimizer._warned_capturable_if_run_uncaptured = True  # type: ignore[attr-defined]  # warm-ups run uncaptured
    steps_on_device(t.optimizer)
    body = make_body(t)

    def body_with_rates(x: torch.Tensor, y: torch.Tensor, first: bool, steps: bool) -> Values:
        with rates.swapped_in():
            return body(x, y, first, steps)

    def captured(what: str) -> None:
        log.info("CUDA graphs: the training step is captured and replayed (%s)", what)

    return StepGraphs(body_with_rates, t.device, announce, before_run=rates.sync,
                      after_failure=lambda: reset_scaler(t.scaler), on_capture=captured)
