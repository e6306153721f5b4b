"""The sweeper's settings (`hydra.sweeper.*`), checked against one table of rules before the sweep writes
anything: a bad value is refused with its name, what it may be, and nothing left on disk.

Hydra's typed config already refuses values of the wrong type (`n_trials=abc`); these rules hold the ranges and
the names Hydra cannot check, and the types again for callers that do not come through Hydra.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from trainctl.config.validate import INT64_MAX
from trainctl.errors import UserError
from trainctl.registry import did_you_mean
from trainctl.sweep.algorithms import PRUNERS, SAMPLERS, is_target

PREFIX = "hydra.sweeper"


def _integer(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _optional_text(v: Any) -> bool:
    return v is None or isinstance(v, str) and v.strip() != ""


def _study_name(v: Any) -> bool:
    """A study name is also a folder name: `a/../../b` would write outside runs/optuna."""
    return v is None or _optional_text(v) and not any(c in v for c in "/\\") and v not in (".", "..")


def _number_in(low: float, high: float) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high


def _named_or_target(names: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: v in names or is_target(v)


def _trial_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(t, dict) and t and all(isinstance(k, str) for k in t) for t in v)


def _params(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and k and isinstance(e, (str, int, float, bool))
                                       for k, e in v.items())


TARGET_FORM = ", or a mapping {{_target_: optuna.{kind}s.<Class>, <argument>: <value>, ...}}"
# setting → (rule, what the setting may be). `direction` depends on `objective`: see SweepDriver._objectives.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_trials": (_integer(1), "an integer >= 1 (the study's total number of trials)"),
    "n_jobs": (_integer(1), "an integer >= 1 (trials at once)"),
    "sampler": (_named_or_target(SAMPLERS), "one of " + ", ".join(SAMPLERS) + TARGET_FORM.format(kind="sampler")),
    "seed": (lambda v: v is None or _integer(0)(v), "an integer >= 0, or null for an unseeded sampler"),
    "pruner": (_named_or_target(PRUNERS), "one of " + ", ".join(PRUNERS) + TARGET_FORM.format(kind="pruner")),
    "pruner_startup_trials": (_integer(0), "an integer >= 0 (trials that finish before the median pruner prunes)"),
    "pruner_warmup_epochs": (_integer(0), "an integer >= 0 (epochs a trial runs before it can be pruned)"),
    "storage": (_optional_text, "null (SQLite in the sweep directory), memory, journal, journal:PATH or a "
                                "database URL"),
    "study_name": (_study_name, "a name without / (it names a folder under runs/optuna), or null for "
                   "<model>-<dataset>-<hash of the command>"),
    "sweep_dir": (_optional_text, "a directory, or null for runs/optuna/<study_name>"),
    "gpus_per_trial": (lambda v: _number_in(0, 1)(v) and v > 0,
                       "a number in (0, 1]: the share of a GPU one trial takes (1: a GPU of its own; 0.5: two "
                       "trials per GPU)"),
    "max_failure_rate": (_number_in(0, 1), "a number in [0, 1] (the share of n_trials that may fail)"),
    "timeout": (lambda v: v is None or _number_in(0, math.inf)(v) and 0 < v < math.inf,
                "a number of seconds > 0 after which no new trial starts, or null for no limit"),
    "heartbeat_interval": (lambda v: v is None or _integer(1)(v),
                           "an integer >= 1 (seconds between a running trial's heartbeats in a database study), or "
                           "null for no heartbeats"),
    "grace_period": (lambda v: v is None or _integer(1)(v),
                     "an integer >= 1 (seconds without a heartbeat after which a running trial is marked FAIL), or "
                     "null for 2 x heartbeat_interval"),
    "enqueue_trials": (_trial_list, "a list of mappings of search-space keys to values, e.g. "
                                    "[{optimizer.lr: 0.01, trainer.batch_size: 64}]"),
    "dry_run": (lambda v: isinstance(v, bool), "true or false"),
    "params": (_params, "a mapping of config keys to sweep expressions, e.g. {optimizer.lr: 'interval(1e-4,1e-1)'}"),
    "conditional": (lambda v: v is None or isinstance(v, dict),
                    "a mapping of config keys to {when: {<key>: <value>}, values: <sweep expression>}"),
    "depth": (lambda v: v is None or isinstance(v, dict),
              "a mapping of list keys to {count: <sweep expression>, width: <sweep expression>}"),
}
NAMES: dict[str, tuple[str, ...]] = {"sampler": SAMPLERS, "pruner": PRUNERS}  # for did-you-mean hints


def check_settings(settings: dict[str, Any]) -> None:
    """Raise UserError for the first setting that breaks its rule."""
    for key, (valid, expected) in RULES.items():
        value = settings.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
            # As every integer setting of trainctl's: n_trials=<80 digits> would otherwise sweep until killed.
            raise UserError(f"{PREFIX}.{key}={str(value)[:20]}...({len(str(value))} digits) is too large: an "
                            f"integer setting holds at most {INT64_MAX:,} (a 64-bit number); it must be {expected}")
        if not valid(value):
            hint = did_you_mean(str(value), list(NAMES[key])) if key in NAMES else ""
            raise UserError(f"{PREFIX}.{key}={value} is not valid: it must be {expected}{hint}")
    interval, grace = settings.get("heartbeat_interval"), settings.get("grace_period")
    if interval is not None and grace is not None and grace <= interval:  # a live trial would be failed between beats
        raise UserError(f"{PREFIX}.grace_period={grace} is not valid: it must be longer than "
                        f"{PREFIX}.heartbeat_interval={interval}, or null for 2 x heartbeat_interval")
