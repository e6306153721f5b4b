"""Metrics follow the task: accuracy, top-5 and per-class accuracy; or MSE and MAE."""

import pytest
import torch

from trainctl.engine.accumulator import MetricAccumulator, pending_batches
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


@pytest.mark.parametrize(("task", "hold"), [("classification", 0), ("classification", 10_000), ("regression", 0)],
                         ids=["classification", "classification, outputs held", "regression"])
def test_training_slots_sum_to_what_batch_by_batch_sums_give(task, hold):
    """`window` (training): each batch writes its loss and score into a slot, added up at folds only; the result
    is the sums added batch by batch, and a checkpoint taken between folds carries the slots unfolded."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for size in (8, 8, 8, 8, 8, 3):  # the last batch short, as at the end of an epoch
        out = torch.randn(size, 5, generator=g)
        target = torch.randint(0, 5, (size,), generator=g) if task == "classification" else torch.randn(size, 5)
        batches.append((out, target, torch.rand((), generator=g)))
    plain = MetricAccumulator(task, 5, torch.device("cpu"), full=False)
    slotted = MetricAccumulator(task, 5, torch.device("cpu"), full=False, window=4, hold=hold)
    for k, batch in enumerate(batches):
        plain.update(*batch)
        slotted.update(*batch)
        if k == 3:
            slotted.fold()  # a log point
        if k == 4:
            saved = slotted.state()  # a checkpoint one batch after the fold: that batch stays in its slot
    assert pending_batches(saved) == 1 and slotted.pending + len(slotted.held) == 2
    assert slotted.compute() == pytest.approx(plain.compute(), rel=1e-6)
    resumed = MetricAccumulator(task, 5, torch.device("cpu"), full=False, window=4 + pending_batches(saved),
                                hold=hold)
    resumed.load_state(saved)
    resumed.update(*batches[5])
    assert resumed.compute() == slotted.compute()  # to the last bit


def test_held_outputs_score_exactly_as_batch_by_batch_and_cost_no_kernel_per_batch():
    """`hold`: small outputs wait for the next check or fold; the slots then hold the same loss products and the
    same total of hits as scoring each batch, and a batch's update dispatches nothing that launches a kernel."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.__name__)
            return func(*args, **(kwargs or {}))

    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(n, 4, generator=g), torch.randint(0, 4, (n,), generator=g), torch.rand((), generator=g))
               for n in (6, 6, 6, 2)]
    scored = MetricAccumulator("classification", 4, torch.device("cpu"), full=False, window=8)
    held = MetricAccumulator("classification", 4, torch.device("cpu"), full=False, window=8, hold=1000)
    ops = Ops()
    for batch in batches:
        scored.update(*batch)
        with ops:
            held.update(*batch)
    assert set(ops.names) <= {"detach.default"} and len(held.held) == 4
    assert torch.equal(held.first_non_finite(), scored.first_non_finite()) and held.pending == 4
    assert torch.equal(held.loss_slots, scored.loss_slots)
    assert held.score_slots.sum() == scored.score_slots.sum()
    assert held.compute() == scored.compute()
    big = MetricAccumulator("classification", 4, torch.device("cpu"), full=False, window=8, hold=7)
    for batch in batches:
        big.update(*batch)  # 8 logits or more a batch: more than it may hold, so scored at once
    assert not big.held and torch.equal(big.loss_slots, scored.loss_slots)


def test_the_first_non_finite_loss_since_the_last_fold_is_found_without_a_sync():
    acc = MetricAccumulator("classification", 3, torch.device("cpu"), full=False, window=5)
    out, target = torch.eye(3), torch.arange(3)
    assert int(acc.first_non_finite()) == -1  # nothing pending
    for loss in (1.0, 2.0, float("inf"), float("nan")):
        acc.update(out, target, torch.tensor(loss))
    found = acc.first_non_finite()
    assert isinstance(found, torch.Tensor) and int(found) == 2
    acc.fold()
    acc.update(out, target, torch.tensor(1.0))
    assert int(acc.first_non_finite()) == -1  # a fold starts the count again


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
