"""Every fact about metric names in one place: which metrics a task reports, which direction is better, and
which config keys name a metric (the objective and every monitor). Best-checkpoint choice, early stopping,
plateau schedules, validation and the sweeper all ask here. No torch: config checks import this.

classification: loss, acc, top5 (when there are more than 5 classes), and per-class accuracy in evaluations;
regression: loss, mse, mae.
"""

from __future__ import annotations

from typing import Any

CLASSIFICATION = "classification"
REGRESSION = "regression"
TOP5_MIN_CLASSES = 6  # top-5 accuracy is only informative when there are more than 5 classes
HIGHER_IS_BETTER = ("acc", "top5")

# Config keys whose value names a metric; each must be one the run produces.
METRIC_KEYS = ("objective", "checkpoint.monitor", "scheduler.monitor", "early_stopping.monitor")
# metrics.json's wall-clock figures: they differ between any two runs, however exact the training.
WALL_CLOCK = ("throughput/train_images_per_s", "time/startup_s", "time/train_to_test_s", "time/finish_s",
              "time/phases")


def has_top5(num_classes: int) -> bool:
    return num_classes >= TOP5_MIN_CLASSES


def metric_names(task: str, many_classes: bool = True) -> tuple[str, ...]:
    """Scalar metric names of a task (per-class accuracies are reported separately)."""
    if task == REGRESSION:
        return ("loss", "mse", "mae")
    return ("loss", "acc", "top5") if many_classes else ("loss", "acc")


def higher_is_better(metric: str) -> bool:
    return metric.rsplit("/", 1)[-1] in HIGHER_IS_BETTER


def metric_mode(metric: str, mode: str = "auto") -> str:
    """'max' for accuracies, 'min' for losses and errors, unless the user said otherwise."""
    if mode != "auto":
        return mode
    return "max" if higher_is_better(metric) else "min"


def direction(metric: str) -> str:
    """Optuna's word for `metric_mode`."""
    return "maximize" if higher_is_better(metric) else "minimize"


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than `min_delta` in direction `mode` (max or min)."""
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def objectives(value: Any) -> list[str]:
    """`objective` as a list: one metric, or several for a multi-objective sweep."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def monitored(explicit: str | None, objective: Any) -> str:
    """The metric a monitor watches: the one named, else the (first) objective."""
    return explicit or objectives(objective)[0]


def known_metrics(task: str | None = None, num_classes: int | None = None) -> list[str]:
    """Metrics a run reports per epoch: val/* in full, train/* loss and score (every task when `task` is None)."""
    tasks = [task] if task else [CLASSIFICATION, REGRESSION]
    many = True if num_classes is None else has_top5(num_classes)
    names = [metric_names(t, many) for t in tasks]
    val = [n for per_task in names for n in per_task]
    train = [n for per_task in names for n in per_task[:2]]
    return [f"val/{n}" for n in dict.fromkeys(val)] + [f"train/{n}" for n in dict.fromkeys(train)]


def unknown_metrics(select: Any, known: list[str]) -> list[tuple[str, str]]:
    """(key, value) of every metric-naming key whose value is not in `known`; `select(key)` reads the config."""
    return [(key, value) for key in METRIC_KEYS for value in objectives(select(key)) if value not in known]


def check_task_metrics(cfg: Any, task: str, num_classes: int) -> None:
    """`objective` and monitors must name metrics this dataset's task produces (e.g. no val/acc on sine)."""
    from omegaconf import OmegaConf

    from trainctl.errors import UserError

    known = known_metrics(task, num_classes)
    for key, value in unknown_metrics(lambda k: OmegaConf.select(cfg, k), known)[:1]:
        raise UserError(f"{key}={value!r} is not a metric of this {task} run: choose one of {', '.join(known)}")
