"""Running a trained model on new inputs, and writing what it says: the top-k classes with their names and
probabilities for a classifier, the predicted values for a regression model.

The batches run on the model's device with the step settings validation used (autocast, memory format);
outputs stay on the device and are read back once, at the end.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from rich.table import Table
from rich.text import Text
from torch import nn

from trainctl.deploy.inputs import Chunk
from trainctl.engine.step import StepSettings
from trainctl.errors import UserError
from trainctl.files import atomic_write_bytes

TABLE_ROWS = 10


@dataclass
class Predictions:
    """What the model said about each named input (CPU tensors)."""

    names: list[str]
    classes: torch.Tensor | None = None  # [N, k] class indices, most likely first
    probabilities: torch.Tensor | None = None  # [N, k]
    values: torch.Tensor | None = None  # [N, *target_shape] for regression

    def __len__(self) -> int:
        return len(self.names)


def predict(model: nn.Module, preprocess: nn.Module, chunks: Iterable[Chunk], settings: StepSettings, task: str,
            topk: int, sigmoid: bool = False) -> Predictions:
    """Run every chunk through `preprocess` and `model`; `sigmoid` gives each class its own probability (a
    model trained with a binary loss per class) instead of a softmax over the classes."""
    model.eval()
    preprocess = preprocess.to(settings.device)
    names: list[str] = []
    outputs: list[torch.Tensor] = []
    with torch.inference_mode():
        for chunk in chunks:
            if chunk.x.is_floating_point() and not bool(torch.isfinite(chunk.x).all()):
                bad = [n for n, row in zip(chunk.names, chunk.x.flatten(1)) if not bool(torch.isfinite(row).all())]
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                raise UserError(f"input {bad[0]}{more} holds non-finite values (nan or inf): the model's answer "
                                "would be meaningless. Fix or drop those inputs.")
            x = preprocess(chunk.x.to(settings.device, non_blocking=True))
            with settings.autocast():
                outputs.append(model(settings.prepare(x)).float())
            names += chunk.names
    if not outputs:
        return Predictions(names)
    out = torch.cat(outputs)
    if task != "classification":
        return Predictions(names, values=out.cpu())
    scores = out.sigmoid() if sigmoid else out.softmax(dim=1)
    probabilities, classes = scores.topk(topk, dim=1)
    return Predictions(names, classes.cpu(), probabilities.cpu())


def class_name(index: int, class_names: tuple[str, ...]) -> str:
    return class_names[index] if index < len(class_names) else str(index)


def records(result: Predictions, class_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """One JSON-ready record per input."""
    if result.values is not None:
        return [{"input": name, "values": values} for name, values in zip(result.names, result.values.tolist())]
    assert result.classes is not None and result.probabilities is not None
    return [{"input": name, "top": [{"class": c, "name": class_name(c, class_names), "prob": round(p, 6)}
                                    for c, p in zip(classes, probabilities)]}
            for name, classes, probabilities in zip(result.names, result.classes.tolist(),
                                                    result.probabilities.tolist())]


def csv_text(result: Predictions, class_names: tuple[str, ...]) -> str:
    """The predictions as CSV: `input, top1_class, top1_name, top1_prob, top2_...`, or `input, value_0, ...`
    (the values of a regression output, flattened in C order)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if result.values is not None:
        flat = result.values.flatten(1).tolist()
        writer.writerow(["input", *(f"value_{i}" for i in range(len(flat[0]) if flat else 0))])
        writer.writerows([name, *(f"{v:.6g}" for v in row)] for name, row in zip(result.names, flat))
        return buffer.getvalue()
    assert result.classes is not None and result.probabilities is not None
    k = result.classes.shape[1]
    writer.writerow(["input", *(f"top{i}_{what}" for i in range(1, k + 1) for what in ("class", "name", "prob"))])
    for name, classes, probabilities in zip(result.names, result.classes.tolist(), result.probabilities.tolist()):
        writer.writerow([name, *(item for c, p in zip(classes, probabilities)
                                 for item in (c, class_name(c, class_names), f"{p:.6f}"))])
    return buffer.getvalue()


def write_predictions(path: Path, result: Predictions, class_names: tuple[str, ...], fmt: str) -> None:
    """The predictions as CSV or JSON, written atomically."""
    if fmt == "json":
        text = json.dumps(records(result, class_names), indent=1) + "\n"
    else:
        text = csv_text(result, class_names)
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def table(result: Predictions, class_names: tuple[str, ...], rows: int = TABLE_ROWS) -> Table:
    """The first `rows` predictions for the console."""
    shown = min(rows, len(result))
    title = f"predictions: the first {shown} of {len(result)}" if shown < len(result) else "predictions"
    view = Table(title=title, header_style="bold")
    view.add_column("input", overflow="fold")
    if result.values is not None:
        view.add_column("predicted values")
        for name, values in zip(result.names[:shown], result.values[:shown].flatten(1).tolist()):
            text = ", ".join(f"{v:.4g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
            view.add_row(Text(name), text)
        return view
    assert result.classes is not None and result.probabilities is not None
    k = result.classes.shape[1]
    view.add_column("class")
    view.add_column("prob", justify="right")
    for i in range(2, k + 1):
        view.add_column(f"#{i}")
    for name, classes, probabilities in zip(result.names[:shown], result.classes[:shown].tolist(),
                                            result.probabilities[:shown].tolist()):
        others = [Text(f"{class_name(c, class_names)} ({p:.2f})") for c, p in zip(classes[1:], probabilities[1:])]
        view.add_row(Text(name), Text(class_name(classes[0], class_names)), f"{probabilities[0]:.4f}", *others)
    return view
