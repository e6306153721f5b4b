"""The checkpoint policy through the real CLI: which epoch best.pt keeps."""

from __future__ import annotations

import json

import torch

from conftest import run_cli, run_dirs


def test_a_tie_on_the_objective_keeps_the_epoch_with_the_lower_val_loss(tmp_path):
    # The smoke run's validation set is easy: val/acc is 1.0 after both epochs while val/loss still falls.
    proc = run_cli(["train", "experiment=smoke"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    first, second = metrics["history"]
    assert first["val/acc"] == second["val/acc"] and second["val/loss"] < first["val/loss"]
    assert metrics["best_epoch"] == 2 and metrics["val/loss"] == second["val/loss"]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == 2
