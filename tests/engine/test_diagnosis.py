"""The verdict: rules on constructed histories, then real CLI runs (one made to overfit, one of a single epoch)
whose metrics.json, summary table and train.log say it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import run_cli, run_dirs
from trainctl.engine.crossval import fold_verdicts
from trainctl.engine.diagnosis import POOR_R2, diagnose, poor_threshold


def history(train_loss: list[float], val_loss: list[float] | None = None, train_acc: list[float] | None = None,
            val_acc: list[float] | None = None) -> list[dict[str, float]]:
    """Per-epoch rows as fit.py records them (accuracies default to a well-fitted 0.95)."""
    rows = []
    for i, loss in enumerate(train_loss):
        row = {"epoch": i + 1, "train/loss": loss, "train/acc": train_acc[i] if train_acc else 0.95}
        if val_loss is not None:
            row.update({"val/loss": val_loss[i], "val/acc": val_acc[i] if val_acc else 0.93})
        rows.append(row)
    return rows


def test_val_loss_rising_after_its_minimum_while_train_falls_is_overfitting_with_the_stop_epoch():
    val = [0.60, 0.45, 0.38, 0.33, 0.31, 0.32, 0.35, 0.40, 0.45]
    train = [0.70, 0.40, 0.30, 0.22, 0.20, 0.12, 0.08, 0.04, 0.02]
    d = diagnose(history(train, val), "classification", 10)
    assert d.verdict == "overfitting"
    assert (d.best_val_loss_epoch, d.best_val_loss, d.final_val_loss) == (5, 0.31, 0.45)
    assert d.reason == ("val/loss was lowest at epoch 5 (0.31) and rose to 0.45 by epoch 9 while train/loss fell "
                        "0.2 → 0.02")
    assert d.suggestions[0].startswith("stop near epoch 5 (trainer.epochs=5")
    assert any("dropout" in s for s in d.suggestions) and any("augmentation" in s for s in d.suggestions)
    assert d.line().startswith("verdict: overfitting — val/loss was lowest at epoch 5")


def test_a_flat_val_loss_while_the_train_loss_keeps_falling_is_overfitting_by_the_gap():
    val = [0.60, 0.40, 0.33, 0.335, 0.333, 0.334, 0.336]  # never 5% above its minimum
    train = [0.70, 0.40, 0.30, 0.22, 0.15, 0.10, 0.06]
    d = diagnose(history(train, val), "classification", 10)
    assert d.verdict == "overfitting"
    assert d.best_val_loss_epoch == 3
    assert "has not improved since epoch 3" in d.reason and "gap grew 0.03 → 0.276" in d.reason


def test_small_noise_after_the_minimum_is_not_overfitting():
    val = [0.60, 0.40, 0.33, 0.32, 0.321, 0.322]
    train = [0.70, 0.40, 0.33, 0.30, 0.295, 0.29]
    assert diagnose(history(train, val), "classification", 10).verdict == "ok"


def test_both_accuracies_near_chance_is_underfitting_even_when_the_curves_are_flat():
    train, val = [2.2, 2.1, 2.1, 2.1], [2.2, 2.1, 2.1, 2.1]
    d = diagnose(history(train, val, [0.15, 0.2, 0.2, 0.21], [0.15, 0.2, 0.21, 0.22]), "classification", 10)
    assert d.verdict == "underfitting"
    assert "train/acc 0.21 and val/acc 0.22" in d.reason and "chance (0.1)" in d.reason and "0.55" in d.reason
    assert any("larger model" in s for s in d.suggestions)


def test_poor_is_half_way_from_chance_to_perfect():
    assert poor_threshold("classification", 10) == pytest.approx(0.55)
    assert poor_threshold("classification", 2) == pytest.approx(0.75)
    assert poor_threshold("regression", 0) == POOR_R2


def test_train_accuracy_far_above_val_accuracy_is_overfitting_not_poor_fit():
    # Only val is poor: a generalisation gap, not a model unable to fit; val/loss is still (slowly) falling.
    val = [1.5, 1.4, 1.35, 1.34, 1.33]
    train = [0.9, 0.5, 0.3, 0.2, 0.15]
    d = diagnose(history(train, val, [0.7, 0.85, 0.9, 0.95, 0.97], [0.4] * 5), "classification", 10)
    assert d.verdict == "overfitting"
    assert d.reason.startswith("train/acc 0.97 is 0.57 above val/acc 0.4 at epoch 5")
    assert not any("stop near" in s for s in d.suggestions)  # val/loss is lowest at the last epoch
    close = diagnose(history(train, val, [0.7, 0.85, 0.9, 0.95, 0.97], [0.9] * 5), "classification", 10)
    assert close.verdict == "ok"  # a gap of 0.07 only, and val/loss falling by less than 1% an epoch


def test_a_val_loss_still_falling_at_the_end_is_still_improving_not_underfitting():
    val = [0.9, 0.7, 0.6, 0.55, 0.50]
    train = [1.0, 0.75, 0.62, 0.56, 0.51]
    d = diagnose(history(train, val), "classification", 10)
    assert d.verdict == "still_improving"
    assert d.reason.startswith("val/loss was still falling when training stopped: 0.6 at epoch 3 → 0.5 at epoch 5")
    assert d.suggestions[0].startswith("more epochs (trainer.epochs=10")


def test_one_epoch_is_unknown_too_few_to_judge():
    d = diagnose(history([0.5], [0.4]), "classification", 10)
    assert d.verdict == "unknown"
    assert "one epoch is too few to judge" in d.reason and "val/loss 0.4" in d.reason
    assert d.best_val_loss_epoch == 1 and d.epochs == 1


def test_a_converged_run_is_ok_with_its_numbers():
    val = [0.5, 0.35, 0.30, 0.298, 0.297, 0.297]
    train = [0.6, 0.36, 0.30, 0.29, 0.285, 0.284]
    d = diagnose(history(train, val), "classification", 10)
    assert d.verdict == "ok" and d.suggestions == []
    assert d.reason == ("val/loss settled at 0.297 (lowest 0.297 at epoch 5), train/loss 0.284, train/acc 0.95, "
                        "val/acc 0.93: no sign of under- or overfitting")


def test_an_early_stopped_run_is_not_called_still_improving_and_names_early_stopping():
    val = [0.9, 0.7, 0.6, 0.62, 0.66]
    train = [1.0, 0.7, 0.5, 0.4, 0.3]
    d = diagnose(history(train, val), "classification", 10, status="early_stopped")
    assert d.verdict == "overfitting" and d.suggestions[0].startswith("early stopping ended the run")
    flat = diagnose(history([1.0, 0.7, 0.6, 0.59], [0.9, 0.7, 0.6, 0.6]), "classification", 10,
                    status="early_stopped")
    assert flat.verdict == "ok"


def test_non_finite_losses_are_left_out_and_said():
    val = [0.9, 0.7, math.nan, 0.6, 0.62, 0.7]
    train = [1.0, 0.7, math.inf, 0.5, 0.4, 0.3]
    d = diagnose(history(train, val), "classification", 10)
    assert d.nonfinite_epochs == [3]
    assert d.verdict == "overfitting" and d.best_val_loss_epoch == 4
    assert "epoch(s) 3 had a non-finite loss and were left out" in d.reason
    assert any("optimizer.lr" in s for s in d.suggestions)
    json.dumps(d.as_dict(), allow_nan=False)  # metrics.json stays strict JSON


def test_no_val_loss_judges_the_training_curve_and_no_loss_at_all_is_unknown():
    d = diagnose(history([1.0, 0.8, 0.6, 0.45]), "classification", 10)
    assert d.verdict == "still_improving" and d.reason.startswith("train/loss was still falling")
    assert d.best_val_loss_epoch is None
    flat = diagnose(history([1.0, 0.5, 0.5, 0.5]), "classification", 10)
    assert flat.verdict == "ok" and "no validation loss to compare with" in flat.reason
    none = diagnose(history([math.nan, math.nan], [math.nan, math.nan]), "classification", 10)
    assert none.verdict == "unknown" and "nothing to judge" in none.reason
    assert diagnose([], "classification", 10).verdict == "unknown"


def test_a_loss_that_reaches_zero_is_judged_without_dividing_by_it():
    d = diagnose(history([0.3, 0.01, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0], val_acc=[0.9, 0.95, 0.96, 0.97]),
                 "classification", 10)
    assert d.verdict == "ok" and d.best_val_loss == 0.0
    falling = diagnose(history([0.3, 0.2, 0.1], [0.0, -0.5, -1.0]), "classification", 10)  # a loss below 0
    assert falling.verdict == "still_improving" and "% in 2 epoch(s)" not in falling.reason


@pytest.mark.parametrize("train_acc, val_acc, said", [
    ([0.9, 0.99, 1.0], [0.9, 0.95, 0.97], "train/acc is 1"),
    ([0.9, 0.95, 0.97], [0.95, 1.0, 1.0], "val/acc is 1"),
    ([0.9, 1.0, 1.0], [0.95, 1.0, 1.0], "val/acc is 1 and train/acc is 1"),
])
def test_an_accuracy_at_its_ceiling_is_not_underfitting_and_says_why_it_cannot_judge(train_acc, val_acc, said):
    d = diagnose(history([0.5, 0.2, 0.1], [0.4, 0.2, 0.1], train_acc, val_acc), "classification", 10)
    assert d.verdict == "unknown" and d.suggestions == []
    assert d.reason.startswith(f"{said} (every sample right): the curves cannot tell")


def test_a_pruned_trial_or_a_cut_short_run_gets_a_reason_and_no_advice():
    falling = history([1.0, 0.75, 0.62], [0.9, 0.7, 0.6])
    pruned = diagnose(falling, "classification", 10, status="pruned")
    assert pruned.verdict == "unknown" and pruned.suggestions == [] and "pruned this trial" in pruned.reason
    dev = diagnose(falling[:1], "classification", 10, cut_short="trainer.max_steps_per_epoch=1")
    assert dev.verdict == "unknown" and dev.suggestions == []
    assert dev.line() == ("verdict: unknown — every epoch was cut short (trainer.max_steps_per_epoch=1): a check "
                          "that the run works end to end, not training to judge")


def test_regression_is_judged_by_r2_from_the_target_variance():
    rows = [{"epoch": e + 1, "train/loss": v, "train/mse": v, "val/loss": v, "val/mse": v}
            for e, v in enumerate([0.45, 0.41, 0.40, 0.40, 0.40])]
    d = diagnose(rows, "regression", 0, target_variance=0.5)
    assert d.verdict == "underfitting" and d.score == "r2"
    assert d.final_train_score == pytest.approx(0.2) and "train/r2 0.2 and val/r2 0.2" in d.reason
    good = [{**r, "train/mse": r["train/mse"] / 100, "val/mse": r["val/mse"] / 100} for r in rows]
    assert diagnose(good, "regression", 0, target_variance=0.5).verdict == "ok"
    # Without the variance there is no R², so no "poor", but the curves are still read.
    unknown_scale = diagnose(rows, "regression", 0)
    assert unknown_scale.verdict == "ok" and unknown_scale.score is None


def test_cross_validation_takes_the_most_common_fold_verdict():
    results = [{"diagnosis": {"verdict": v}} for v in ("ok", "overfitting", "overfitting", "ok", "underfitting")]
    assert fold_verdicts(results) == {"verdict": "ok",
                                      "folds": ["ok", "overfitting", "overfitting", "ok", "underfitting"]}
    results.append({"diagnosis": {"verdict": "overfitting"}})
    assert fold_verdicts(results)["verdict"] == "overfitting"


# ---- through the real CLI ----------------------------------------------------------------------------------
BLOBS = ["dataset=blobs", "model=mlp", "dataset.n_train=500", "dataset.n_test=100", "trainer.progress=false"]


def metrics_and_log(run: Path) -> tuple[dict, str]:
    return json.loads((run / "metrics.json").read_text()), (run / "train.log").read_text()


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory: pytest.TempPathFactory):
    """40 points of two heavily overlapping clusters (noisy labels, in effect) and a 512x512 MLP: it memorises
    them and its validation loss climbs after a few epochs."""
    cwd = tmp_path_factory.mktemp("overfit")
    proc = run_cli(["train", *BLOBS, "dataset.train_size=40", "dataset.std=3", "trainer.epochs=30",
                    "optimizer.lr=0.003"], cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = run_dirs(cwd)
    return proc, run


def test_an_overfitting_run_says_so_in_metrics_the_table_and_the_log(overfit_run):
    proc, run = overfit_run
    metrics, log = metrics_and_log(run)
    d = metrics["diagnosis"]
    val = [row["val/loss"] for row in metrics["history"]]
    lowest = val.index(min(val)) + 1
    assert d["verdict"] == "overfitting"
    assert d["best_val_loss_epoch"] == lowest and 1 < lowest < 30
    assert f"val/loss was lowest at epoch {lowest}" in d["reason"]
    assert f"verdict: overfitting — val/loss was lowest at epoch {lowest}" in log
    assert f"stop near epoch {lowest}" in log
    assert "│ diagnosis" in proc.stdout and "overfitting │" in proc.stdout
    assert "train 40 / val 100 / test 100" in log  # dataset.train_size: 40 of the 400 left after validation


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("one-epoch")
    proc = run_cli(["train", *BLOBS, "trainer.epochs=1"], cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dirs(cwd)[0]


def test_a_one_epoch_run_is_not_judged(one_epoch_run):
    metrics, log = metrics_and_log(one_epoch_run)
    assert metrics["diagnosis"]["verdict"] == "unknown"
    assert "verdict: unknown — one epoch is too few to judge" in log


def test_a_run_whose_val_loss_reaches_zero_finishes_and_so_does_its_resume(tmp_path):
    # A large learning rate on well-separated blobs: val/loss is exactly 0.0 in float32 from epoch 1 on.
    proc = run_cli(["train", "experiment=smoke", "optimizer.lr=0.1", "model.hidden=[256]"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 in [row["val/loss"] for row in metrics["history"]]
    assert metrics["diagnosis"]["verdict"] == "unknown" and "val/acc is 1" in metrics["diagnosis"]["reason"]
    resumed = run_cli(["train", f"resume={run}", "trainer.epochs=3"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
