"""The model summary: its totals, what it leaves untouched, models torchinfo cannot run, and a real run's
model.txt, TensorBoard text and console line."""

import re

import pytest
import torch
from torch import nn

from conftest import run_cli, run_dirs
from trainctl.callbacks.summary import TAG, summarize
from trainctl.components import build_model
from trainctl.config.compose import compose
from trainctl.data.splits import DataSpec


def total_params(text: str) -> int:
    return int(re.search(r"^Total params: ([\d,]+)$", text, re.M).group(1).replace(",", ""))


class Tied(nn.Module):
    """Two linear layers sharing one weight matrix (tied weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.encode, self.decode = nn.Linear(8, 8), nn.Linear(8, 8)
        self.decode.weight = self.encode.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def test_shared_parameters_are_counted_once_and_said_to_be_shared():
    model = Tied()
    result = summarize(model, (8,))
    assert result.totals.params == sum(p.numel() for p in model.parameters()) == 64 + 8 + 8
    assert total_params(result.text) == 80
    assert "64 parameters are shared between layers" in result.text
    assert result.totals.macs == 2 * (64 + 8)  # torchinfo's count: weights and biases of both layers


def test_trainable_and_frozen_parameters_are_told_apart():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    totals = summarize(model, (4,)).totals
    assert (totals.params, totals.trainable) == (15 + 8, 8)
    assert "Non-trainable params: 15" in summarize(model, (4,)).text


def test_the_summary_leaves_modes_statistics_and_random_state_as_they_were():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 36, 3))
    model.train()
    model[1].eval()  # a frozen norm layer inside a training model keeps its own mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    result = summarize(model, (1, 8, 8))
    assert result.problem is None
    assert [m.training for m in model.modules()] == [True, True, False, True, True, True]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng)  # a resumed run draws what an uninterrupted one does


def test_a_recurrent_model_gets_its_multiply_adds_counted():
    model = build_model(compose(["model=lstm"]).model, DataSpec((1, 28, 28), 10))
    result = summarize(model, (1, 28, 28))
    assert result.totals.macs and result.totals.macs > 28 * 4 * 128 * 28  # 28 steps of four gates
    assert "LSTM (rnn)" in result.text


class Scale(nn.Module):
    """A layer whose parameter torchinfo does not count: it counts those named weight or bias."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def test_layers_torchinfo_cannot_count_are_named_in_a_note():
    result = summarize(nn.Sequential(Scale(), nn.Linear(4, 2)), (4,))
    assert result.totals.params == 4 + 10
    assert "multiply-adds not counted for Scale" in result.text
    assert result.totals.macs == 10  # the linear layer's


class NeedsIntegers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)  # zeros as floats: torch refuses


def test_a_model_torchinfo_cannot_run_still_gets_its_totals():
    result = summarize(NeedsIntegers(), (5,))
    assert result.problem is not None and "could not run the model" in result.problem
    assert result.totals.params == 40 and result.totals.macs is None
    assert "no layer table" in result.text and "Total params: 40" in result.text
    assert "MACs unknown" in result.totals.line()


@pytest.mark.slow
def test_a_run_writes_the_table_to_model_txt_tensorboard_and_one_console_line(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = run_cli(["train", "experiment=smoke", "trainer.epochs=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [run] = run_dirs(tmp_path)
    expected = sum(p.numel() for p in build_model(compose(["experiment=smoke"]).model, DataSpec((2,), 2))
                   .parameters())
    text = (run / "model.txt").read_text()
    assert total_params(text) == expected == 2 * 32 + 32 + 32 * 2 + 2  # mlp 2-32-2
    assert "Linear (fc1)" in text and "[1, 32]" in text  # rows with the layer, by its name, and its output shape
    events = EventAccumulator(str(run), size_guidance={"tensors": 0})
    events.Reload()
    stored = f"{TAG}/text_summary"  # torch's add_text stores the tag with this suffix (the config's too)
    assert stored in events.Tags()["tensors"]
    assert events.SummaryMetadata(stored).plugin_data.plugin_name == "text"
    [logged] = events.Tensors(stored)
    assert f"Total params: {expected:,}" in logged.tensor_proto.string_val[0].decode()
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "trainable)" in line]
    assert len(lines) == 1 and f"{expected:,} params ({expected:,} trainable)" in lines[0]
    assert f"model: {expected:,} params" in (run / "train.log").read_text()
