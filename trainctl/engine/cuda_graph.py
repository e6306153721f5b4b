"""Whole-step CUDA graphs, the mechanism: `StepGraphs` runs a training step per batch, eagerly while warming up
each kind of step, then as a captured graph replayed.

Why: a small model on a GPU is bound by kernel launches and host work, not by arithmetic (the seed CNN at batch
64 does its sums in a fraction of the time the host takes to launch them). Captured with `torch.cuda.graph`, a
whole step becomes one launch, with no compiler involved. What the step is, and when a run may use graphs, is
`trainctl.engine.graph_step`'s business.

A kind of step is a role (the first micro-batch of an optimizer step or a later one; stepping the optimizer or
not) at one batch shape, so the short last batch of an epoch is a kind of its own. Each batch is copied into its
kind's static buffers; the first `WARMUP_RUNS` batches of a kind run eagerly on a side stream (real training,
the very operations the graph records), the next is captured and replayed, and the rest are replayed. All
graphs share one memory pool. Something that cannot be captured (too many shapes, a host sync in the step, a
failed capture) stops the graphs for the run, with one message, and the step runs eagerly from then on.

`GRAPH_FACTORY` and `CAPTURING_DEVICES` let tests drive all of this on the CPU with a fake graph.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import torch

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
        stream = torch.cuda.current_stream()
        try:
            with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
                record()
        except BaseException:
            torch.cuda.set_stream(stream)  # a failed capture_end leaves the capture stream current
            raise

    def replay(self) -> None:
        self.graph.replay()

    def pool(self) -> Any:
        return self.graph.pool()


GRAPH_FACTORY: Callable[[], Graph] = CudaGraph
CAPTURING_DEVICES = frozenset({"cuda"})


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
                 on_capture: Callable[[str], None] = lambda what: None,
                 factory: Callable[[], Graph] | None = None, warmup: int | None = None,
                 max_graphs: int = MAX_GRAPHS) -> None:
        self.body, self.device, self.announce = body, device, announce
        self.before_run, self.after_failure, self.on_capture = before_run, after_failure, on_capture
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
            kind = self.kinds[key] = _Kind(torch.empty_like(x, device=self.device),
                                           torch.empty_like(y, device=self.device))
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
            with self._sync_allowed():  # torch synchronizes before a capture, which trainer.sync_debug would refuse
                graph.capture(record, self.pool)
        except RuntimeError as error:
            self.after_failure()
            return self._stop(f"capturing the step failed: {str(error).strip().splitlines()[0][:200]}",
                              kind.x, kind.y, first, steps)
        # Graphs share one memory pool: safe because a graph's outputs (the two values) are copied out before
        # any other graph replays, and everything else they write lives outside the pool.
        if self.pool is None:
            self.pool = graph.pool()
            self.on_capture(f"{len(self.kinds)} kind(s) of step so far, the first for batches of shape "
                            f"{tuple(kind.x.shape)}")
        kind.graph = graph
        graph.replay()  # a capture records without running: this batch trains now
        return kind.values  # type: ignore[return-value]

    def _stop(self, reason: str, *batch: Any) -> Any:
        """From now on every step runs eagerly (the body itself, so accumulation carries on); said once."""
        self.reason, self.kinds = reason, {}
        self.announce(reason)
        return self.body(*batch) if batch else None

    @contextlib.contextmanager
    def _sync_allowed(self) -> Iterator[None]:
        mode = torch.cuda.get_sync_debug_mode() if self.device.type == "cuda" else 0
        if mode:
            torch.cuda.set_sync_debug_mode(0)
        try:
            yield
        finally:
            if mode:
                torch.cuda.set_sync_debug_mode(mode)

    @contextlib.contextmanager
    def _side_stream(self) -> Iterator[None]:
        """Warm-up on a side stream, as torch asks before a capture (lazily made state then belongs to no
        stream the capture uses)."""
        if self.device.type != "cuda":
            yield
            return
        if self.side is None:
            self.side = torch.cuda.Stream(self.device)
        main = torch.cuda.current_stream(self.device)
        self.side.wait_stream(main)
        try:
            with torch.cuda.stream(self.side):
                yield
        finally:
            main.wait_stream(self.side)

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
