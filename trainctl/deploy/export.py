"""Exported programs a deployment runs without trainctl: ONNX (`torch.onnx.export`, checked in onnxruntime) and
`torch.export`'s `.pt2`, each compared with PyTorch on a real batch of the checkpoint's test split.

The ONNX exporter tried first is the current, torch.export-based one; where it fails, the TorchScript-based one
(`dynamo=False`) is tried and the switch is said. A trace that warns it may be wrong for other inputs (Python
control flow on tensor values) is refused rather than written. Both programs take a batch of any size.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from trainctl.data.splits import SplitLike, identity
from trainctl.deploy.preprocess import InputRules
from trainctl.errors import UserError

log = logging.getLogger("trainctl")

Runner = Callable[[torch.Tensor], torch.Tensor]
DYNAMO = "torch.export-based exporter"
TORCHSCRIPT = "TorchScript-based exporter (dynamo=False)"
EXAMPLE_SAMPLES = 64
INSTALL_HINT = 'pip install "trainctl[export]"'


def deployable(model: nn.Module, rules: InputRules, preprocess: bool) -> nn.Module:
    """The module to export: the model in eval mode, behind the training preprocessing when `preprocess`."""
    model = model.to(memory_format=torch.contiguous_format).eval()
    return nn.Sequential(rules.preprocess(), model).eval() if preprocess else model


def example_batch(split: SplitLike, rules: InputRules, preprocess: bool, dtype: str,
                  n: int = EXAMPLE_SAMPLES) -> torch.Tensor:
    """The first `n` test samples in the form the exported program takes: raw pixels (uint8, or float in
    [0, 1]) with `preprocess`, the model's own normalised input without. Two samples at least, so that the
    batch dimension is not taken for a constant."""
    raw, _ = next(iter(split.ordered(n, identity)))
    raw = raw[:n].cpu().clone()  # storage of its own: a view would carry the whole split into the .pt2's inputs
    if raw.shape[0] < 2:
        raw = torch.cat([raw, raw])
    if not rules.images:
        return raw.float()
    if not preprocess:
        return rules.preprocess()(raw)
    return raw if dtype == "uint8" else raw.float().div(255.0)


@dataclass
class Agreement:
    """How closely an exported program reproduces PyTorch on the example batch (and on a batch of one)."""

    samples: int
    max_difference: float
    tolerance: float
    same_top1: int | None  # classifiers: inputs whose most likely class is the same

    def summary(self, runtime: str) -> str:
        same = f"; same top-1 class for {self.same_top1} of {self.samples}" if self.same_top1 is not None else ""
        return (f"{runtime} vs PyTorch on {self.samples} test samples (and on a batch of one): max |difference| "
                f"{self.max_difference:.2e} (tolerance {self.tolerance:.1e}){same}")


def compare(reference: nn.Module, run: Runner, example: torch.Tensor, tolerance: float, classify: bool,
            runtime: str) -> Agreement:
    """Run the example through PyTorch and through `run`; a difference beyond `tolerance` (relative to the
    output's largest magnitude, at least 1) is an error."""
    with torch.inference_mode():
        expected = reference(example).float()
    got = run(example).float()
    single = run(example[:1]).float()
    if got.shape != expected.shape or single.shape != expected[:1].shape:
        raise UserError(f"{runtime} gives outputs of shape {list(got.shape)} where PyTorch gives "
                        f"{list(expected.shape)}: the exported file is wrong and was not written")
    difference = max(float((got - expected).abs().max()), float((single - expected[:1]).abs().max()))
    allowed = tolerance * max(1.0, float(expected.abs().max()))
    if not difference <= allowed:  # also catches NaN
        raise UserError(f"{runtime} and PyTorch disagree on the test batch by up to {difference:.3g}, beyond the "
                        f"tolerance {allowed:.3g}: the exported file was not written. Loosen it with tolerance= if "
                        "the difference is acceptable")
    same = int((got.argmax(1) == expected.argmax(1)).sum()) if classify else None
    return Agreement(int(example.shape[0]), difference, tolerance, same)


def require(*modules: str, what: str) -> None:
    """Refuse, naming the install command, when an optional package is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{what} needs the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}: "
                        f"{INSTALL_HINT}")


def first_line(error: BaseException) -> str:
    """The first meaningful line of the error at the root of an exporter's failure (the ONNX exporter wraps
    torch.export's finding in advice about its own steps), without terminal colour codes."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Exporters print progress, warnings, log lines and, when they fail, whole graphs: keep the console to
    trainctl's own lines (a failure is told in one)."""
    logging.disable(logging.CRITICAL)  # torch's loggers set their own levels: only this silences all of them
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def export_onnx(module: nn.Module, example: torch.Tensor, metadata: dict[str, str], model_name: str
                ) -> tuple[bytes, str]:
    """The ONNX file's bytes (with `metadata` in its properties) and the exporter that made them."""
    require("onnx", "onnxruntime", what="format=onnx")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with quiet():
                torch.onnx.export(module, (example,), str(path), dynamo=True, input_names=["input"],
                                  output_names=["output"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                                  external_data=False, verbose=False)
            used = DYNAMO
        except Exception as e:  # noqa: BLE001  (the exporter raises many kinds)
            log.warning("the torch.export-based ONNX exporter failed on %s (%s): trying the TorchScript-based "
                        "exporter (dynamo=False)", model_name, first_line(e))
            _torchscript_onnx(module, example, path, model_name, first_line(e))
            used = TORCHSCRIPT
        data = path.read_bytes()
    return _with_metadata(data, metadata), used


def _torchscript_onnx(module: nn.Module, example: torch.Tensor, path: Path, model_name: str, dynamo_error: str
                      ) -> None:
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("always")
        try:
            torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        except Exception as e:  # noqa: BLE001
            raise UserError(f"neither ONNX exporter can export {model_name} (torch.export-based: {dynamo_error}; "
                            f"TorchScript-based: {first_line(e)}). Use format=safetensors: the weights and the "
                            "JSON that rebuilds the model work for every model") from None
    traced = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if traced:
        raise UserError(f"neither ONNX exporter can export {model_name} faithfully: torch.export failed "
                        f"({dynamo_error}) and the TorchScript trace would be wrong for other inputs "
                        f"({first_line(traced[0].message)}), as Python control flow on tensor values is fixed by "
                        "the trace. Use format=safetensors: the weights and the JSON that rebuilds the model work "
                        "for every model")


def _with_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def onnx_runner(data: bytes) -> Runner:
    """The ONNX model in an onnxruntime CPU session, as a function of a batch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def export_pt2(module: nn.Module, example: torch.Tensor, model_name: str) -> tuple[bytes, Runner]:
    """The `torch.export` program's bytes, and the program reloaded from them."""
    try:
        with quiet():
            program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"torch.export cannot export {model_name} ({first_line(e)}). Use format=safetensors: the "
                        "weights and the JSON that rebuilds the model work for every model (format=onnx may too: "
                        "its TorchScript-based exporter traces instead)") from None
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    data = buffer.getvalue()
    reloaded = torch.export.load(io.BytesIO(data)).module()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return reloaded(x)

    return data, run
