"""Whole-step CUDA graphs (`trainer.cuda_graphs`): the training step captured once and replayed.

Why: a small model on a GPU is bound by kernel launches and host work, not by arithmetic (the seed CNN at batch
64 does its sums in a fraction of the time the host takes to launch them). Captured with `torch.cuda.graph`, the
whole step (forward, loss, backward, clipping, the optimizer's and the gradient scaler's step, the EMA and the
step's metric values) becomes one launch. No compiler is involved.

How: `StepGraphs.run` copies each batch into static buffers and runs one kind of step (a first or later
micro-batch, stepping the optimizer or not, at one batch shape) eagerly for a few warm-up batches, on a side
stream, then captures it and replays the capture from then on; the short last batch of an epoch is a kind of its
own. The warm-up runs are real training, the very operations the graph records, so a run with graphs gives the
same results wherever it was resumed (the graphs are captured afresh in each process).

What stays outside the graph: the on-device gather and augmentation that make the batch (their generators are
the epoch's own), the learning-rate schedule (computed on the host; each group's lr is mirrored into a device
tensor the captured optimizer reads, one fill when it changes) and the copy of the metric values into their
slots. Evaluation runs eagerly: few, large batches.

What cannot be captured runs eagerly, and the log says why once (`blocker`, and at run time: too many batch
shapes, a host sync in the step, a failed capture). `GRAPH_FACTORY` and `CAPTURING_DEVICES` let tests drive
all of this on the CPU with a fake graph.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import torch

from trainctl.components.losses import reduces_by_sum
from trainctl.engine.accumulator import write_batch_values

if TYPE_CHECKING:
    from trainctl.engine.step import Trainer

log = logging.getLogger("trainctl")

WARMUP_RUNS = 3  # eager runs of each kind before its capture: optimizer state, cuDNN plans, cuBLAS handles
MAX_GRAPHS = 8  # kinds of step (roles x batch shapes) worth a graph each; more means shapes that keep changing

Values = tuple[torch.Tensor, torch.Tensor]  # the batch's summed loss and score, for the metric slots
Body = Callable[[torch.Tensor, torch.Tensor, bool, bool], Values]  # (x, y, first micro-batch, steps)


class Graph(Protocol):
    """What `StepGraphs` needs of a graph: record a function once, replay it, share its memory pool."""

    def capture(self, record: Callable[[], None], pool: Any) -> None: ...

    def replay(self) -> None: ...

    def pool(self) -> Any: ...


class CudaGraph:
    """torch's CUDA graph. `thread_local`: CUDA work of other threads (a TensorBoard writer) does not spoil it."""

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()

    def capture(self, record: Callable[[], None], pool: Any) -> None:
        with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            record()

    def replay(self) -> None:
        self.graph.replay()

    def pool(self) -> Any:
        return self.graph.pool()


GRAPH_FACTORY: Callable[[], Graph] = CudaGraph
CAPTURING_DEVICES = frozenset({"cuda"})


def graph_mode(value: Any) -> str:
    """`trainer.cuda_graphs` as one word: auto (null too), true or false."""
    if value is None or value == "auto":
        return "auto"
    return "true" if value else "false"


def uses_compiled_graphs(trainer_cfg: Any, device: torch.device) -> bool:
    """`trainer.compile=true` with graphs allowed, on CUDA: torch.compile(mode="reduce-overhead") records its
    own graphs of the model (the path trainctl had before whole-step graphs), and the step runs eagerly."""
    return bool(trainer_cfg.compile) and graph_mode(trainer_cfg.cuda_graphs) != "false" and device.type == "cuda"


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
    if t.device.type not in CAPTURING_DEVICES:
        return f"CUDA graphs need a CUDA device and this run is on {t.device.type}"
    if cfg.compile:
        return "trainer.compile=true: torch.compile(mode=reduce-overhead) records graphs of the model instead"
    if t.dist.world > 1:
        return "a data-parallel run (trainer.devices > 1): its gradient all-reduce is not captured"
    if cfg.detect_anomaly:
        return "trainer.detect_anomaly=true checks every operation on the host"
    problem = optimizer_blocker(t.optimizer)
    if problem:
        return problem
    if t.scaler is not None and not getattr(t.optimizer, "_step_supports_amp_scaling", False):
        return (f"precision=fp16's gradient scaler checks for overflow on the host before each {type(t.optimizer).__name__} "
                "step (fused Adam, AdamW and SGD check on the device; precision=bf16 needs no scaler)")
    scheduler = t.schedule.scheduler
    if t.schedule.per_batch and getattr(scheduler, "cycle_momentum", False):
        return (f"the {type(scheduler).__name__} schedule changes the momentum every step, which a captured "
                "optimizer step would keep fixed (scheduler.cycle_momentum=false allows graphs)")
    return None


@dataclass
class _Kind:
    """One kind of step: its static inputs, eager runs so far, and its graph once captured."""

    x: torch.Tensor
    y: torch.Tensor
    runs: int = 0
    graph: Graph | None = None
    values: Values | None = None


class StepGraphs:
    """Runs a step `body(x, y, first, steps) -> (loss, score)` per batch: eagerly while warming up each kind,
    then replayed from its capture. After a `reason` to stop, every batch runs the body eagerly."""

    def __init__(self, body: Body, device: torch.device, announce: Callable[[str], None],
                 before_run: Callable[[], None] = lambda: None, after_failure: Callable[[], None] = lambda: None,
                 factory: Callable[[], Graph] | None = None, warmup: int | None = None,
                 max_graphs: int = MAX_GRAPHS) -> None:
        self.body, self.device, self.announce = body, device, announce
        self.before_run, self.after_failure = before_run, after_failure
        self.factory = factory or GRAPH_FACTORY
        self.warmup, self.max_graphs = WARMUP_RUNS if warmup is None else warmup, max_graphs
        self.kinds: dict[tuple, _Kind] = {}
        self.pool: Any = None
        self.reason: str | None = None
        self.side: torch.cuda.Stream | None = None

    def run(self, x: torch.Tensor, y: torch.Tensor, first: bool, steps: bool) -> Values:
        self.before_run()
        if self.reason is not None:
            return self.body(x, y, first, steps)
        key = (first, steps, tuple(x.shape), x.dtype, tuple(y.shape), y.dtype)
        kind = self.kinds.get(key)
        if kind is None:
            if len(self.kinds) >= self.max_graphs:
                return self._stop(f"the batches come in more than {self.max_graphs} kinds of shape", x, y, first, steps)
            kind = self.kinds[key] = _Kind(torch.empty_like(x), torch.empty_like(y))
        kind.x.copy_(x)
        kind.y.copy_(y)
        if kind.graph is not None:
            kind.graph.replay()
            return kind.values  # type: ignore[return-value]
        if kind.runs < self.warmup:
            kind.runs += 1
            with self._side_stream(), self._sync_probe(kind.runs == self.warmup) as syncs:
                values = self.body(kind.x, kind.y, first, steps)
            if syncs:
                self._stop(f"the step makes the host wait for the GPU ({syncs[0]}): keep values on the device in "
                           "the model and the loss")
            return values
        return self._capture(kind, first, steps)

    def _capture(self, kind: _Kind, first: bool, steps: bool) -> Values:
        graph = self.factory()

        def record() -> None:
            kind.values = self.body(kind.x, kind.y, first, steps)

        try:
            graph.capture(record, self.pool)
        except RuntimeError as error:
            self.after_failure()
            return self._stop(f"capturing the step failed: {str(error).strip().splitlines()[0][:200]}",
                              kind.x, kind.y, first, steps)
        # Graphs share one memory pool: safe because a graph's outputs (the two values) are copied out before
        # any other graph replays, and everything else they write lives outside the pool.
        if self.pool is None:
            self.pool = graph.pool()
        kind.graph = graph
        graph.replay()  # a capture records without running: this batch trains now
        return kind.values  # type: ignore[return-value]

    def _stop(self, reason: str, *batch: Any) -> Any:
        """From now on every step runs eagerly (the body itself, so accumulation carries on); said once."""
        self.reason, self.kinds = reason, {}
        self.announce(reason)
        return self.body(*batch) if batch else None

    @contextlib.contextmanager
    def _side_stream(self) -> Iterator[None]:
        """Warm-up on a side stream, as torch asks before a capture (lazily made state then belongs to no
        stream the capture uses)."""
        if self.device.type != "cuda":
            yield
            return
        if self.side is None:
            self.side = torch.cuda.Stream(self.device)
        self.side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.side):
            yield
        torch.cuda.current_stream(self.device).wait_stream(self.side)

    @contextlib.contextmanager
    def _sync_probe(self, armed: bool) -> Iterator[list[str]]:
        """The last warm-up run of a kind with torch's sync check on ("warn"): a step that waits for the GPU
        cannot be captured. Left alone when `trainer.sync_debug` has armed the check itself."""
        found: list[str] = []
        if not armed or self.device.type != "cuda" or torch.cuda.get_sync_debug_mode() != 0:
            yield found
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield found
            finally:
                torch.cuda.set_sync_debug_mode(0)
        found += [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]


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
        elif t.device.type in CAPTURING_DEVICES:
            log.info("CUDA graphs: the step runs eagerly: %s", reason)

    if mode == "false":
        return None
    reason = blocker(t)
    if reason is not None:
        announce(reason)
        return None
    rates = LearningRates(t.optimizer, t.device)
    t.optimizer._warned_capturable_if_run_uncaptured = True  # type: ignore[attr-defined]  # warm-ups run uncaptured
    body = make_body(t)

    def body_with_rates(x: torch.Tensor, y: torch.Tensor, first: bool, steps: bool) -> Values:
        with rates.swapped_in():
            return body(x, y, first, steps)

    return StepGraphs(body_with_rates, t.device, announce, before_run=rates.sync,
                      after_failure=lambda: reset_scaler(t.scaler))
