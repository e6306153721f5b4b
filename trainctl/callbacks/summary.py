"""The model's table at the start of a run: each layer with its output shape, parameters and multiply-adds,
then the totals. It goes to `<run>/model.txt` and TensorBoard's text (`model/summary`); the console gets one
line of totals. `trainctl summary` prints the same table without training.

The layer rows come from torchinfo (a maintained library: one forward pass of a batch of one, with hooks).
The totals are counted here from the model's own parameters, because torchinfo counts a tensor shared by two
layers (tied weights) once per layer. A model torchinfo cannot run costs a warning and the layer rows, never
the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from trainctl.callbacks.tensorboard import TensorBoardLogger
from trainctl.engine.events import Callback
from trainctl.engine.step import Trainer
from trainctl.files import atomic_write_bytes

log = logging.getLogger("trainctl")

COLUMNS = ("output_size", "num_params", "mult_adds")
DEPTH = 3  # rows down to a block's own layers (resnet: stage → block → conv); deeper ones add to their parent
TAG = "model/summary"
FILE_NAME = "model.txt"


@dataclass(frozen=True)
class ModelTotals:
    params: int  # each tensor once, however many layers share it
    trainable: int
    macs: int | None  # multiply-adds for one sample; None when the model could not be traced
    size_mb: float  # parameters and buffers, 1 MB = 10^6 bytes

    def line(self) -> str:
        """`2,377,354 params (2,377,354 trainable), 38.78M MACs (77.56M FLOPs) per sample, 9.52 MB`"""
        work = "MACs unknown" if self.macs is None else (
            f"{_short(self.macs)} MACs ({_short(2 * self.macs)} FLOPs) per sample")
        return f"{self.params:,} params ({self.trainable:,} trainable), {work}, {_megabytes(self.size_mb)} MB"


@dataclass(frozen=True)
class Summary:
    text: str  # the table with its totals and notes
    totals: ModelTotals
    problem: str | None = None  # why there are no layer rows: the model could not be traced


def _megabytes(mb: float) -> str:
    return f"{mb:,.2f}" if mb >= 0.01 else f"{mb:.6f}".rstrip("0").rstrip(".")  # a tiny model is not "0.00 MB"


def _short(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def count(model: nn.Module, macs: int | None) -> ModelTotals:
    """Totals from the tensors themselves: `parameters()` and `buffers()` yield a shared tensor once."""
    params = list(model.parameters())
    size = sum(t.numel() * t.element_size() for t in (*params, *model.buffers()))
    return ModelTotals(sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad), macs,
                       size / 1e6)


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> Any:
    """torchinfo's statistics for one zero sample on the model's own device, leaving no trace on the run:
    eval mode (batch norm keeps its running statistics), every module's mode restored, random state untouched."""
    from torchinfo import summary

    first = next(iter([*model.parameters(), *model.buffers()]), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    modes = [(m, m.training) for m in model.modules()]
    forked = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=forked):
            return summary(model, input_data=torch.zeros((1, *input_shape), device=device, dtype=dtype),
                           col_names=COLUMNS, depth=DEPTH, row_settings=("var_names",), mode="eval", verbose=0)
    finally:
        for module, training in modes:
            module.training = training


def _table(stats: Any) -> str:
    rule = "=" * stats.formatting.get_total_width()
    rows = stats.formatting.layers_to_str(stats.summary_list, stats.total_params)
    return f"{rule}\n{stats.formatting.header_row()}{rule}\n{rows}{rule}\n"


def _notes(stats: Any, totals: ModelTotals) -> list[str]:
    notes = ["mult-adds are torchinfo's estimate from each layer's weights and output size; activations, pooling "
             "and other operations without weights are not counted."]
    shown = sum(max(layer.num_params, 0) for layer in stats.summary_list if layer.is_leaf_layer
                and not layer.is_recursive)
    if shown > totals.params:
        notes.append(f"{shown - totals.params:,} parameters are shared between layers: each of their rows shows "
                     "them, the totals count them once.")
    uncounted = sorted({layer.class_name for layer in stats.summary_list
                        if layer.is_leaf_layer and layer.num_params > 0 and not layer.macs})
    if uncounted:
        notes.append(f"multiply-adds not counted for {', '.join(uncounted)}: their parameters are named neither "
                     "weight nor bias, which is what torchinfo counts from.")
    return notes


def _macs(macs: int | None) -> str:
    if macs is None:
        return "unknown"
    short = _short(macs)
    return f"{macs:,}{'' if short == str(macs) else f' ({short})'}; FLOPs ~ 2 x MACs = {_short(2 * macs)}"


def summarize(model: nn.Module, input_shape: Sequence[int], notes: Sequence[str] = ()) -> Summary:
    """The model's table for inputs of `input_shape` (one sample, without the batch dimension)."""
    shape = tuple(int(d) for d in input_shape)
    problem = None
    try:
        stats = _trace(model, shape)
    except ImportError:
        stats, problem = None, "torchinfo is not installed (pip install torchinfo)"
    except Exception as e:  # a model that cannot run on zeros (integer inputs, several inputs, ...)
        cause = e.__cause__ or e  # torchinfo wraps the model's own error
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        stats = None
        problem = f"torchinfo could not run the model on a zero input of shape {[1, *shape]}: {first_line}"
    totals = count(model, None if stats is None else int(stats.total_mult_adds))
    head = f"{type(model).__name__}, input {[1, *shape]} (a batch of one sample)\n"
    body = _table(stats) if stats is not None else f"no layer table: {problem}\n"
    lines = [
        f"Total params: {totals.params:,}",
        f"Trainable params: {totals.trainable:,}",
        f"Non-trainable params: {totals.params - totals.trainable:,}",
        f"Mult-adds (MACs) per sample: {_macs(totals.macs)}",
        f"Size (MB): {_megabytes(totals.size_mb)} (parameters and buffers)",
    ]
    all_notes = [*notes, *(_notes(stats, totals) if stats is not None else [])]
    text = head + body + "\n".join(lines) + "\n" + "".join(f"Note: {n}\n" for n in all_notes)
    return Summary(text, totals, problem)


class ModelSummary(Callback):
    """Writes the model's table once, when training starts; listens to no step, so the loop pays nothing."""

    def on_fit_start(self, trainer: Trainer) -> None:
        result = summarize(trainer.raw_model, trainer.data.spec.input_shape)
        path = trainer.run_dir / FILE_NAME
        atomic_write_bytes(path, lambda f: f.write(result.text.encode()))
        if result.problem is not None:
            log.warning("model summary has no layer table: %s", result.problem)
        log.info("model: %s (table: %s)", result.totals.line(), FILE_NAME)
        writer = next((c.writer for c in trainer.events.callbacks if isinstance(c, TensorBoardLogger)), None)
        if writer is not None and not trainer.resumed:  # a resumed run's events file has it already
            writer.add_text(TAG, "```\n" + result.text + "```", 0)
