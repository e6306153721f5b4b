"""The verdict at the end of a run: `underfitting`, `overfitting`, `still_improving` or `ok` (or `unknown`,
with the reason it cannot judge), read from the per-epoch train and validation curves (`state.history`), with
the numbers that led to it and what to try next.

Pure rules on plain numbers (no torch), in the order a practitioner checks them:

1. poor: the model does not even fit its training data (high bias) → underfitting, whatever else is seen;
2. validation loss rose after its minimum while the training loss kept falling, or stayed put while the
   training loss fell on, so the train–val gap grew, or train accuracy ends far above validation accuracy
   → overfitting, with the epoch to stop at;
3. an accuracy at its ceiling (val/acc or train/acc of 1) → unknown: nothing is left to improve on that set, so
   the curves cannot tell a model that needs more from one that is done;
4. a validation loss still falling when training stopped → still_improving (train longer: that is not
   underfitting, which says the model cannot fit);
5. otherwise ok. One epoch, a run cut short on purpose (a pruned trial, `debug=fast_dev_run`) or no finite loss
   → unknown, with the reason and no advice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from trainctl.metrics import REGRESSION

Points = list[tuple[int, float]]  # (epoch, value) of the epochs where a metric was finite

# Poor, classification: less than half of the way from chance (1/num_classes) to perfect, on the training data
# and on validation. Networks of the usual sizes can fit their training set, so failing at that is high bias:
# too small a model, too few epochs, or a learning rate that does not converge. Half-way is where a
# practitioner stops calling accuracy "a bit low" (55% on 10 classes, 75% on 2).
POOR_FRACTION = 0.5
# Poor, regression: R² = 1 - mse / variance of the training targets (0: no better than predicting their mean).
# Below one half, the model explains less of the targets than it leaves out.
POOR_R2 = 0.5
# Validation loss has risen once it is 5% above its minimum: smaller moves are the noise of a finite
# validation set and of the last epochs' steps.
RISE_TOLERANCE = 0.05
# Plateau overfitting: since validation loss was lowest, the train–val loss gap grew by at least 20% of that
# lowest loss, i.e. the model kept fitting its training set by an amount that did not carry over.
GAP_GROWTH = 0.2
# Still improving: validation loss fell by at least 1% per epoch on average over the last 2 epochs, so more
# epochs would very likely still pay. Two, not more: a curve that fell steeply and then went flat has stopped.
IMPROVING_PER_EPOCH = 0.01
IMPROVING_WINDOW = 2
# Accuracy gap: train accuracy 15 points above validation accuracy is more than the noise of a validation set of a
# few hundred samples, and dropout or augmentation only lower the train figure: the model memorises.
ACC_GAP = 0.15
# Overfitting is only called from 3 epochs on: a single rise after one epoch is as likely noise (and the first
# epoch's training loss, an average over a model still learning, is no baseline for a gap).
MIN_EPOCHS_FOR_OVERFITTING = 3
# An accuracy at or above this is at its ceiling (every sample right, up to float rounding of the mean).
CEILING = 1 - 1e-9


@dataclass
class Diagnosis:
    """What `diagnose` concludes; `as_dict()` is what metrics.json holds under `diagnosis`."""

    verdict: str  # underfitting, overfitting, still_improving, ok, or unknown (the reason says why)
    reason: str  # one sentence with the numbers
    suggestions: list[str] = field(default_factory=list)
    epochs: int = 0
    best_val_loss_epoch: int | None = None
    best_val_loss: float | None = None
    final_val_loss: float | None = None
    final_train_loss: float | None = None
    score: str | None = None  # "acc" (classification) or "r2" (regression), for the two values below
    final_train_score: float | None = None
    final_val_score: float | None = None
    nonfinite_epochs: list[int] = field(default_factory=list)  # epochs whose train or val loss was NaN/inf

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """The log line: `verdict: <verdict> — <reason>; try: <suggestions>`."""
        tail = f"; try: {'; '.join(self.suggestions)}" if self.suggestions else ""
        return f"verdict: {self.verdict} — {self.reason}{tail}"


def _num(value: float) -> str:
    return f"{value:.3g}"


def _series(history: Sequence[dict[str, Any]], key: str) -> Points:
    """(epoch, value) of every epoch with a finite `key`."""
    points = []
    for row in history:
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            points.append((int(row["epoch"]), float(value)))
    return points


def _nonfinite(history: Sequence[dict[str, Any]]) -> list[int]:
    return [int(row["epoch"]) for row in history
            if any(isinstance(row.get(k), float) and not math.isfinite(row[k]) for k in ("train/loss", "val/loss"))]


def _last(points: Points) -> float | None:
    return points[-1][1] if points else None


def _scores(history: Sequence[dict[str, Any]], task: str, target_variance: float | None
            ) -> tuple[str | None, float | None, float | None]:
    """(name, last train value, last val value) of the score judged for "poor": accuracy, or R² from mse."""
    if task != REGRESSION:
        return "acc", _last(_series(history, "train/acc")), _last(_series(history, "val/acc"))
    if not target_variance or not math.isfinite(target_variance):
        return None, None, None

    def r2(mse: float | None) -> float | None:
        return None if mse is None else 1 - mse / target_variance

    return "r2", r2(_last(_series(history, "train/mse"))), r2(_last(_series(history, "val/mse")))


def poor_threshold(task: str, num_classes: int) -> float | None:
    """The score below which a model is poor: half-way from chance to perfect accuracy, or R² of POOR_R2."""
    if task == REGRESSION:
        return POOR_R2
    if num_classes < 2:
        return None
    chance = 1 / num_classes
    return chance + POOR_FRACTION * (1 - chance)


def diagnose(history: Sequence[dict[str, Any]], task: str, num_classes: int = 0,
              target_variance: float | None = None, status: str = "completed", cut_short: str | None = None
             ) -> Diagnosis:
    """The verdict on a run from its per-epoch `history` (rows with `epoch`, `train/loss`, `val/loss`, and
    `train/acc`/`val/acc` or `train/mse`/`val/mse`). `target_variance` (regression) makes R² and so "poor"
    possible; `status` "early_stopped" means training stopped because validation no longer improved, "pruned"
    that a sweep stopped the trial. `cut_short` names the setting that made the epochs partial on purpose
    (`trainer.max_steps_per_epoch=1` of debug=fast_dev_run): such a run is a check, not training to judge."""
    train, val = _series(history, "train/loss"), _series(history, "val/loss")
    score, train_score, val_score = _scores(history, task, target_variance)
    d = Diagnosis("unknown", "", epochs=len(history), final_val_loss=_last(val), final_train_loss=_last(train),
                  score=score, final_train_score=train_score, final_val_score=val_score,
                  nonfinite_epochs=_nonfinite(history))
    if val:
        d.best_val_loss_epoch, d.best_val_loss = min(val, key=lambda p: p[1])
    curve = val or train  # without validation, the training curve still tells a model that is still learning
    if not curve:
        d.reason = "no finite train/loss or val/loss was recorded, so there is nothing to judge"
        return _noted(d)
    if status == "pruned":
        d.reason = f"the sweep pruned this trial after {d.epochs} epoch(s): stopped on purpose, not judged"
        return d
    if cut_short is not None:
        d.reason = (f"every epoch was cut short ({cut_short}): a check that the run works end to end, not "
                    "training to judge")
        return d
    for rule in (_poor, _overfitting, _one_epoch, _at_ceiling, _still_learning):
        if rule(d, train, val, task, num_classes, status):
            return _noted(d)
    _ok(d, train, val)
    return _noted(d)


def _noted(d: Diagnosis) -> Diagnosis:
    """Say when epochs with a non-finite loss were left out of the judgement."""
    if d.nonfinite_epochs:
        shown = ", ".join(str(e) for e in d.nonfinite_epochs[:5]) + (", ..." if len(d.nonfinite_epochs) > 5 else "")
        d.reason += f" (epoch(s) {shown} had a non-finite loss and were left out)"
        d.suggestions.append("a lower optimizer.lr, or trainer.gradient_clip_val, for the non-finite losses")
    return d


def _poor(d: Diagnosis, train: Points, val: Points, task: str, num_classes: int, status: str) -> bool:
    threshold = poor_threshold(task, num_classes)
    known = [s for s in (d.final_train_score, d.final_val_score) if s is not None]
    if threshold is None or not known or max(known) >= threshold:
        return False
    shown = " and ".join(f"{split}/{d.score} {_num(s)}" for split, s in
                         (("train", d.final_train_score), ("val", d.final_val_score)) if s is not None)
    if task == REGRESSION:
        d.reason = (f"{shown} (1 − mse / variance of the training targets) after {d.epochs} epoch(s) are below "
                    f"{_num(threshold)}: the model does not fit even its training data")
    else:
        d.reason = (f"{shown} after {d.epochs} epoch(s) are less than half-way from chance ({_num(1 / num_classes)}) "
                    f"to 1 (below {_num(threshold)}): the model does not fit even its training data")
    d.verdict = "underfitting"
    d.suggestions = [f"more epochs (trainer.epochs={2 * max(d.epochs, 5)}, or resume=<run> with it)",
                     "a larger model (more layers or units)",
                     "another optimizer.lr (too low learns slowly, too high does not converge)",
                     "less regularisation (dropout, optimizer.weight_decay)"]
    return True


def _overfitting(d: Diagnosis, train: Points, val: Points, task: str, num_classes: int, status: str) -> bool:
    if len(val) < MIN_EPOCHS_FOR_OVERFITTING or not train or d.best_val_loss_epoch is None:
        return False
    best_epoch, best = d.best_val_loss_epoch, d.best_val_loss
    last_epoch, last = val[-1]
    train_at = dict(train)
    if best_epoch not in train_at or last_epoch not in train_at:
        return False
    train_best, train_last = train_at[best_epoch], train_at[last_epoch]
    # Since val/loss was lowest, training loss kept falling: the model went on fitting its training set.
    fitting_on = best_epoch < last_epoch and train_last < train_best
    gap_best, gap_last = best - train_best, last - train_last
    fell = f"train/loss fell {_num(train_best)} → {_num(train_last)}"
    acc_gap = (d.final_train_score - d.final_val_score if d.score == "acc" and d.final_train_score is not None
               and d.final_val_score is not None else None)
    if fitting_on and last > best * (1 + RISE_TOLERANCE):
        d.reason = (f"val/loss was lowest at epoch {best_epoch} ({_num(best)}) and rose to {_num(last)} by epoch "
                    f"{last_epoch} while {fell}")
    elif fitting_on and gap_last > 0 and gap_last - gap_best >= GAP_GROWTH * abs(best):  # val above train
        d.reason = (f"val/loss has not improved since epoch {best_epoch} ({_num(best)}; {_num(last)} at epoch "
                    f"{last_epoch}) while {fell}: the train–val gap grew {_num(gap_best)} → {_num(gap_last)}")
    elif acc_gap is not None and acc_gap >= ACC_GAP:
        d.reason = (f"train/acc {_num(d.final_train_score)} is {_num(acc_gap)} above val/acc "
                    f"{_num(d.final_val_score)} at epoch {last_epoch}: the model fits its training data far better "
                    "than data it has not seen")
    else:
        return False
    d.verdict = "overfitting"
    if status == "early_stopped":
        stop = ["early stopping ended the run; best.pt is the best epoch by checkpoint.monitor"]
    elif best_epoch < last_epoch:
        stop = [f"stop near epoch {best_epoch} (trainer.epochs={best_epoch}, or early_stopping.patience to stop "
                "automatically)"]
    else:
        stop = []  # val/loss is still at its lowest: stopping earlier would not help, regularising would
    d.suggestions = [*stop, "dropout or optimizer.weight_decay",
                     "augmentation (for images: dataset.crop_padding, dataset.hflip) or more training data"]
    return True


def _one_epoch(d: Diagnosis, train: Points, val: Points, task: str, num_classes: int, status: str) -> bool:
    if d.epochs > 1:
        return False
    d.verdict = "unknown"
    d.reason = (f"one epoch is too few to judge (val/loss {_fmt(d.final_val_loss)}, train/loss "
                f"{_fmt(d.final_train_loss)}): the model has seen its data once and is very likely still improving")
    d.suggestions = [_longer(d)]
    return True


def _at_ceiling(d: Diagnosis, train: Points, val: Points, task: str, num_classes: int, status: str) -> bool:
    """An accuracy of 1 leaves no room to improve on that set: a falling loss there only grows confidence, so
    neither "underfitting" nor "still improving" would be true. Say why the run cannot be judged."""
    if d.score != "acc":
        return False
    full = [f"{split}/acc is 1" for split, value in (("val", d.final_val_score), ("train", d.final_train_score))
            if value is not None and value >= CEILING]
    if not full:
        return False
    d.verdict = "unknown"
    d.reason = (f"{' and '.join(full)} (every sample right): the curves cannot tell a model that needs more "
                "training from one that is done, so there is no verdict; a harder or larger validation set "
                "(or test/acc) says more")
    return True


def _still_learning(d: Diagnosis, train: Points, val: Points, task: str, num_classes: int, status: str) -> bool:
    curve, name = (val, "val/loss") if val else (train, "train/loss")
    if status == "early_stopped" or len(curve) < 2:
        return False  # early stopping ended it because validation no longer improved
    window = min(IMPROVING_WINDOW, len(curve) - 1)
    (start_epoch, start), (end_epoch, end) = curve[-1 - window], curve[-1]
    # `<=`: a loss that reached 0 (and stayed there) is not falling, and its share below is never 0 / 0.
    if start - end <= 0 or start - end < IMPROVING_PER_EPOCH * window * abs(start):
        return False
    d.verdict = "still_improving"
    d.reason = (f"{name} was still falling when training stopped: {_num(start)} at epoch {start_epoch} → "
                f"{_num(end)} at epoch {end_epoch} ({_percent(start - end, start)} in {window} epoch(s)); "
                "more epochs would very likely still pay")
    d.suggestions = [_longer(d)]
    return True


def _longer(d: Diagnosis) -> str:
    return f"more epochs (trainer.epochs={2 * max(d.epochs, 5)}, or resume=<run> with it)"


def _percent(part: float, whole: float) -> str:
    """`part` as a share of `whole`, guarded: a whole of 0 has no share."""
    return f"{_num(100 * part / abs(whole))}%" if whole else "all of it"


def _ok(d: Diagnosis, train: Points, val: Points) -> None:
    d.verdict = "ok"
    parts = []
    if val:
        parts.append(f"val/loss settled at {_num(val[-1][1])} (lowest {_num(d.best_val_loss)} at epoch "
                     f"{d.best_val_loss_epoch})")
    if train:
        parts.append(f"train/loss {_num(train[-1][1])}")
    for split, value in (("train", d.final_train_score), ("val", d.final_val_score)):
        if value is not None:
            parts.append(f"{split}/{d.score} {_num(value)}")
    d.reason = ", ".join(parts) + ": no sign of under- or overfitting"
    if not val:
        d.reason += " in the training curve (no validation loss to compare with)"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else _num(value)
