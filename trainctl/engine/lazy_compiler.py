"""Training that compiles nothing, without importing torch's compiler.

torch imports its compiler stack, `torch._dynamo` (about 1 s of CPU, two thirds of `import torch` again), the
first time an optimizer is built or steps, only to tell that compiler where not to trace: `Optimizer.step` calls
`torch._dynamo.graph_break()`, and methods such as `zero_grad` and `state_dict` ask `torch._dynamo.disable` for
a wrapper of themselves. Outside compiled code both do nothing. So a run that compiles nothing (no
`trainer.compile`, no CUDA graphs) gets, for its duration, a stand-in module that answers those two and imports
the real `torch._dynamo` the moment anything else is asked of it.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from typing import Any, Callable, Iterator

NAME = "torch._dynamo"


class _StandIn(types.ModuleType):
    """`torch._dynamo` as eager code sees it; any other attribute loads the real module."""

    def __init__(self) -> None:
        super().__init__(NAME)
        self.handed_out: list[Callable[..., Any]] = []

    @staticmethod
    def graph_break(msg: str = "") -> None:
        """Where compiled code must stop: nothing outside compiled code."""

    def disable(self, fn: Callable[..., Any] | None = None, recursive: bool = True, **kwargs: Any) -> Any:
        """The function itself: outside compiled code there is nothing to exclude it from. torch caches the
        answer on `fn`; `compiler_unloaded` clears that cache afterwards."""
        if fn is None:  # the decorator-factory form, which torch uses at import time only
            return self._real().disable(fn, recursive, **kwargs)
        self.handed_out.append(fn)
        return fn

    def __getattr__(self, name: str) -> Any:
        # `inspect.getmodule` asks every module in sys.modules for `__file__`; loading the compiler for that
        # from inside another import (torch.distributed.tensor, during `torch.jit.trace`) is a circular import.
        # `__path__` still loads it: importing a submodule (`torch._dynamo.config`) needs the real package.
        if name.startswith("__") and name.endswith("__") and name != "__path__":
            raise AttributeError(name)
        return getattr(self._real(), name)

    def _real(self) -> types.ModuleType:
        if sys.modules.get(NAME) is self:
            del sys.modules[NAME]
        return importlib.import_module(NAME)


@contextlib.contextmanager
def compiler_unloaded(compiles: bool) -> Iterator[None]:
    """The stand-in in place of `torch._dynamo` while a run that `compiles` nothing trains; nothing changes when
    it compiles or the real module is already loaded."""
    if compiles or NAME in sys.modules:
        yield
        return
    stand_in = _StandIn()
    sys.modules[NAME] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(NAME) is stand_in:
            del sys.modules[NAME]
        for fn in stand_in.handed_out:  # a later compiling run in this process asks the real module again
            if getattr(fn, "__dynamo_disable", None) is fn:
                delattr(fn, "__dynamo_disable")
