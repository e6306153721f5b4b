"""`loss.weight=balanced` from the training labels, and a summed loss logged per sample."""

import pytest
import torch

from trainctl.components.losses import build_loss
from trainctl.config.compose import compose
from trainctl.config.validate import validate
from trainctl.data.splits import DataBundle, DataSpec, Split
from trainctl.engine.build import build_model_parts
from trainctl.engine.step import StepSettings, evaluate
from trainctl.errors import UserError

SPEC = DataSpec((2,), 3, class_names=("cat", "dog", "eel"))


def imbalanced(counts=(60, 30, 10), seed=0):
    """A generated 2-feature, 3-class set with `counts` samples per class (shuffled)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=g)]
    x = torch.randn(len(y), 2, generator=g) + y.unsqueeze(-1).float()
    split = Split(x, y)
    return DataBundle(split, split, split, SPEC)


def built_loss(*overrides, data=None):
    cfg = compose(["model=mlp", "model.hidden=[4]", *overrides])
    return build_model_parts(cfg, data or imbalanced(), torch.device("cpu")).loss_fn


@pytest.mark.parametrize("name", ["cross_entropy", "nll"])
def test_balanced_weights_are_n_over_classes_times_count(name):
    weight = built_loss(f"loss={name}", "loss.weight=balanced").weight
    assert torch.allclose(weight, torch.tensor([100 / (3 * 60), 100 / (3 * 30), 100 / (3 * 10)]))
    logits, labels = torch.randn(8, 3), torch.tensor([0, 1, 2, 2, 1, 0, 0, 2])
    manual = built_loss(f"loss={name}", f"loss.weight={weight.tolist()}")
    assert torch.allclose(built_loss(f"loss={name}", "loss.weight=balanced")(logits, labels), manual(logits, labels))


def test_balanced_weights_leave_the_config_as_written():
    cfg = compose(["loss.weight=balanced"])
    build_loss(cfg.loss, SPEC, imbalanced().train.y)
    assert cfg.loss.weight == "balanced"


def test_a_class_without_training_samples_is_named():
    with pytest.raises(UserError, match=r"^loss.weight=balanced: class 1 \('dog'\) has no sample in the training "
                                        r"split, so its weight n_samples / \(n_classes × 0\) is infinite"):
        built_loss("loss.weight=balanced", data=imbalanced((5, 0, 5)))


def test_balanced_weights_need_labels_in_memory():
    with pytest.raises(UserError, match=r"^loss.weight=balanced counts the training split's labels, and this "
                                        r"dataset streams them .*loss.weight=\[1.0,1.0,1.0\]$"):
        build_loss(compose(["loss.weight=balanced"]).loss, SPEC, None)


@pytest.mark.parametrize(("overrides", "message"), [
    (["loss.weight=even"], r"loss.weight='even' is not allowed: give a list of numbers or balanced, or null"),
    (["loss.weight=2"], r"loss.weight=2 is not allowed: give a list of numbers or balanced, or null"),
    (["loss.weight=[1,-1]"], r"loss.weight=\[1, -1\] has \[-1\]: every item must be >= 0.0"),
    (["loss=focal", "loss.alpha=1.5"], r"loss.alpha=1.5 is out of range: it must be <= 1.0"),
    (["loss=focal", "loss.alpha=[0.5,x]"], r"loss.alpha=\[0.5, 'x'\] is not allowed: give a number or a list of "
                                           r"numbers, or null"),
    (["loss.reduction=none"], r"loss.reduction='none' is not allowed: choose one of mean, sum"),
])
def test_bad_weights_alphas_and_reductions_are_refused_naming_the_key(overrides, message):
    cfg = compose(overrides)
    with pytest.raises(UserError, match=message):
        validate(cfg, overrides)


def test_good_weights_and_alphas_pass_validation():
    for overrides in (["loss.weight=balanced"], ["loss.weight=[1,2.5,0]"], ["loss=focal", "loss.alpha=0.25"],
                      ["loss=focal", "loss.alpha=[0.25,2,1]"], ["loss=nll", "loss.reduction=sum"]):
        validate(compose(overrides), overrides)


@pytest.mark.parametrize("name", ["cross_entropy", "mse"])
def test_a_summed_loss_is_logged_per_sample_like_a_mean_one(name):
    data = imbalanced()
    cfg = compose(["model=mlp", "model.hidden=[4]", f"loss={name}"])
    parts = build_model_parts(cfg, data, torch.device("cpu"))
    summed = build_model_parts(compose(["model=mlp", "model.hidden=[4]", f"loss={name}", "loss.reduction=sum"]),
                               data, torch.device("cpu")).loss_fn
    settings = StepSettings(cfg.trainer, torch.device("cpu"))
    # Batches of 32 over 100 samples: the last one is short, so a per-batch scale would show.
    mean_metrics = evaluate(parts.model, data.val, data, parts.loss_fn, 32, settings)
    sum_metrics = evaluate(parts.model, data.val, data, summed, 32, settings)
    per_sample = 3 if name == "mse" else 1  # an elementwise loss sums each sample's 3 one-hot elements
    assert sum_metrics["loss"] == pytest.approx(per_sample * mean_metrics["loss"], rel=1e-6)
