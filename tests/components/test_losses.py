"""Loss equivalences and target handling."""

import pytest
import torch
from torch.nn import functional as F

from trainctl.components.losses import build_loss
from trainctl.data.splits import DataSpec
from trainctl.errors import UserError
from trainctl.config.compose import compose



SPEC = DataSpec((1, 28, 28), 10)
torch.manual_seed(0)
LOGITS = torch.randn(32, 10)
LABELS = torch.randint(0, 10, (32,))


def loss(*overrides):
    return build_loss(compose(list(overrides)).loss, SPEC)


def test_focal_with_gamma_zero_is_cross_entropy():
    assert torch.allclose(loss("loss=focal", "loss.gamma=0")(LOGITS, LABELS), F.cross_entropy(LOGITS, LABELS))


def test_focal_down_weights_easy_examples():
    assert loss("loss=focal", "loss.gamma=2")(LOGITS, LABELS) < F.cross_entropy(LOGITS, LABELS)
    half = loss("loss=focal", "loss.gamma=0", "loss.alpha=0.5")(LOGITS, LABELS)
    assert torch.allclose(half, 0.5 * F.cross_entropy(LOGITS, LABELS))


def test_nll_after_log_softmax_is_cross_entropy():
    assert torch.allclose(loss("loss=nll")(LOGITS, LABELS), F.cross_entropy(LOGITS, LABELS))


def test_cross_entropy_options():
    smooth = loss("loss=cross_entropy", "loss.label_smoothing=0.1")(LOGITS, LABELS)
    assert torch.allclose(smooth, F.cross_entropy(LOGITS, LABELS, label_smoothing=0.1))
    weights = [float(i + 1) for i in range(10)]
    weighted = loss("loss=cross_entropy", f"loss.weight={weights}")(LOGITS, LABELS)
    assert torch.allclose(weighted, F.cross_entropy(LOGITS, LABELS, weight=torch.tensor(weights)))
    with pytest.raises(UserError, match="loss.weight has 2 values but the dataset has 10 classes"):
        loss("loss=cross_entropy", "loss.weight=[1,2]")


@pytest.mark.parametrize(("name", "reference"), [
    ("mse", lambda o, t: F.mse_loss(o.softmax(-1), t)),
    ("l1", F.l1_loss), ("smooth_l1", F.smooth_l1_loss), ("bce_with_logits", F.binary_cross_entropy_with_logits),
])
def test_regression_losses_one_hot_class_labels(name, reference):
    one_hot = F.one_hot(LABELS, 10).float()
    assert torch.allclose(loss(f"loss={name}")(LOGITS, LABELS), reference(LOGITS, one_hot))


@pytest.mark.parametrize("name", ["mse", "l1", "smooth_l1"])
def test_regression_losses_on_real_targets(name):
    out, target = torch.randn(4, 50, 1), torch.randn(4, 50, 1)
    fn = {"mse": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}[name]
    assert torch.allclose(loss(f"loss={name}")(out, target), fn(out, target))


@pytest.mark.parametrize("name", ["cross_entropy", "nll"])
def test_class_weights_must_not_all_be_zero(name):
    with pytest.raises(UserError, match=r"^loss.weight=\[0.0, .*\] gives every class weight 0, so the mean loss"):
        loss(f"loss={name}", f"loss.weight={[0] * 10}")
    assert loss(f"loss={name}", f"loss.weight={[0, 1] * 5}")(LOGITS, LABELS).isfinite()


def test_class_losses_refuse_regression():
    with pytest.raises(UserError, match="loss 'focal' needs class labels"):
        build_loss(compose(["loss=focal"]).loss, DataSpec((50, 1), 0, "regression", (), (50, 1)))


@pytest.mark.parametrize(("name", "factor"), [
    ("cross_entropy", 32), ("nll", 32), ("focal", 32),  # one term per sample: sum = batch size × mean
    ("mse", 320), ("l1", 320), ("smooth_l1", 320), ("bce_with_logits", 320),  # one per element (10 per sample)
])
def test_reduction_sum_totals_what_mean_averages(name, factor):
    mean = loss(f"loss={name}")(LOGITS, LABELS)
    total = loss(f"loss={name}", "loss.reduction=sum")
    assert torch.allclose(total(LOGITS, LABELS), factor * mean) and total.reduction == "sum"


def focal_terms(gamma=2.0):
    log_p = F.log_softmax(LOGITS, -1).gather(-1, LABELS.unsqueeze(-1)).squeeze(-1)
    return -((1 - log_p.exp()) ** gamma) * log_p


def test_focal_alpha_per_class_weights_each_sample_by_its_class():
    alpha = [0.1 * (k + 1) for k in range(10)]
    weighted = loss("loss=focal", f"loss.alpha={alpha}")(LOGITS, LABELS)
    assert torch.allclose(weighted, (torch.tensor(alpha)[LABELS] * focal_terms()).mean())
    # Silencing one class removes exactly its samples' terms.
    silenced = loss("loss=focal", f"loss.alpha={[0.0] + [1.0] * 9}")(LOGITS, LABELS)
    assert torch.allclose(silenced, torch.where(LABELS == 0, 0.0, focal_terms()).mean())
    assert not torch.allclose(silenced, loss("loss=focal")(LOGITS, LABELS))


@pytest.mark.parametrize(("alpha", "message"), [
    ("[0.25,0.75]", r"^loss.alpha has 2 values but the dataset has 10 classes: give one weight per class"),
    (f"{[0] * 10}", r"^loss.alpha=\[0.0, .*\] gives every class weight 0, so the loss is always 0"),
])
def test_focal_alpha_per_class_must_fit_the_classes(alpha, message):
    with pytest.raises(UserError, match=message):
        loss("loss=focal", f"loss.alpha={alpha}")
