"""Metrics follow the task: accuracy, top-5 and per-class accuracy; or MSE and MAE."""

import torch

from trainctl.engine.accumulator import MetricAccumulator
from trainctl.metrics import metric_names


def test_classification_metrics():
    acc = MetricAccumulator("classification", 7, torch.device("cpu"), full=True)
    logits = torch.tensor([[9.0, 8, 7, 6, 5, 4, 3]] * 4)
    labels = torch.tensor([0, 1, 4, 6])  # top-1 right once (0); top-5 (classes 0-4) right three times
    acc.update(logits, labels, torch.tensor(2.0))
    assert acc.compute() == {"loss": 2.0, "acc": 0.25, "top5": 0.75}
    assert acc.per_class_accuracy() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # absent classes count as 0


def test_training_accumulator_keeps_to_loss_and_accuracy():
    acc = MetricAccumulator("classification", 10, torch.device("cpu"), full=False)
    acc.update(torch.eye(10)[:4], torch.tensor([0, 1, 2, 0]), torch.tensor(1.0))
    assert acc.compute() == {"loss": 1.0, "acc": 0.75}


def test_regression_metrics():
    acc = MetricAccumulator("regression", 0, torch.device("cpu"), full=True)
    out = torch.zeros(2, 3, 1)
    target = torch.tensor([[[1.0], [1.0], [1.0]], [[-2.0], [-2.0], [-2.0]]])
    acc.update(out, target, torch.tensor(0.5))
    assert acc.compute() == {"loss": 0.5, "mse": 2.5, "mae": 1.5}


def test_metric_names_by_task():
    assert metric_names("classification", many_classes=False) == ("loss", "acc")
    assert metric_names("classification") == ("loss", "acc", "top5")
    assert metric_names("regression") == ("loss", "mse", "mae")
