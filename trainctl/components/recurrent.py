"""Recurrent models (rnn, lstm, gru): image classifiers that read rows as time steps, or seq2seq regressors."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from trainctl.components.models import MODELS
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class SequenceModel(nn.Module):
    """Inputs [N, T, F] (images [N, C, H, W] become T=H rows of C·W features).

    Classification reads the last time step; regression maps every time step to the target features.
    """

    def __init__(self, cell: type[nn.RNNBase], cfg: DictConfig, spec: DataSpec, **cell_options: Any) -> None:
        super().__init__()
        shape = spec.input_shape
        features = shape[0] * shape[2] if len(shape) == 3 else shape[-1]
        self.classify = spec.task == "classification"
        self.rnn = cell(features, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True,
                        bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
                        bias=cfg.bias, **cell_options)
        width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        outputs = spec.num_classes if self.classify else spec.target_shape[-1]
        self.head = nn.Linear(width, outputs)
        # model.stateful: the last training batch's final state, detached (the tutorial's `h_state`)
        self.stateful = bool(cfg.get("stateful", False))
        self.state: Any = None

    def train(self, mode: bool = True) -> "SequenceModel":
        if mode and not self.training:  # a new epoch (or training after validation): the streams start over
            self.state = None
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # [N, C, H, W] → [N, H, C·W]
            x = x.permute(0, 2, 1, 3).flatten(2)
        carry = self.stateful and self.training
        state = self.state if carry and _rows(self.state) == x.shape[0] else None
        out, last = self.rnn(x, state)
        if carry:  # detached: gradients stop at the batch boundary, as in truncated backpropagation through time
            self.state = tuple(s.detach() for s in last) if isinstance(last, tuple) else last.detach()
        return self.head(out[:, -1] if self.classify else out)


def _rows(state: Any) -> int | None:
    """The batch size a carried state was made for ([layers, N, hidden]; LSTM: a pair)."""
    if state is None:
        return None
    return int((state[0] if isinstance(state, tuple) else state).shape[1])


def _build(kind: str, cfg: DictConfig, spec: DataSpec) -> nn.Module:
    if len(spec.input_shape) not in (2, 3):
        raise UserError(f"model '{kind}' needs sequences (T, F) or images (C, H, W), not {spec.input_shape}")
    # Only the plain RNN has a choice of nonlinearity (LSTM and GRU gates are fixed sigmoids and tanh).
    options = {"nonlinearity": cfg.nonlinearity} if kind == "rnn" else {}
    return SequenceModel(CELLS[kind], cfg, spec, **options)


@MODELS.register("rnn")
def build_rnn(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Elman RNN: classifies images read row by row, or maps sequences to sequences (regression)."""
    return _build("rnn", cfg, spec)


@MODELS.register("lstm")
def build_lstm(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """LSTM: classifies images read row by row, or maps sequences to sequences (regression)."""
    return _build("lstm", cfg, spec)


@MODELS.register("gru")
def build_gru(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """GRU: classifies images read row by row, or maps sequences to sequences (regression)."""
    return _build("gru", cfg, spec)
