"""`hydra.sweeper.*` rules, table-driven: each bad value is refused by name (test_sweeper checks that the CLI
does so before it writes anything)."""

from dataclasses import asdict

import pytest

from hydra_plugins.trainctl_optuna.config import TrainctlOptunaSweeperConf
from trainctl.errors import UserError
from trainctl.sweep.settings import RULES, check_settings

DEFAULTS = {k: v for k, v in asdict(TrainctlOptunaSweeperConf()).items()
            if k not in ("_target_", "_recursive_")} | {"seed": 0}

BAD = [
    ("n_trials", 0, "an integer >= 1"),
    ("n_trials", "abc", "an integer >= 1"),
    ("n_trials", True, "an integer >= 1"),
    ("n_jobs", 0, "an integer >= 1"),
    ("gpus_per_trial", 0, r"a number in \(0, 1\]: the share of a GPU one trial takes"),
    ("gpus_per_trial", 1.5, r"a number in \(0, 1\]"),
    ("gpus_per_trial", "half", r"a number in \(0, 1\]"),
    ("gpus_per_trial", True, r"a number in \(0, 1\]"),
    ("max_failure_rate", 2, r"a number in \[0, 1\]"),
    ("max_failure_rate", -0.1, r"a number in \[0, 1\]"),
    ("sampler", "tpf", "one of tpe, random, cmaes, grid, qmc, nsgaii, or a mapping .*; did you mean 'tpe'"),
    ("sampler", {"seed": 1}, r"one of tpe, .*, or a mapping \{_target_: optuna\.samplers\.<Class>, <argument>"),
    ("pruner", "bar", "one of median, hyperband, successive_halving, none"),
    ("pruner", {"_target_": ""}, r"one of median, .*, or a mapping \{_target_: optuna\.pruners\.<Class>"),
    ("pruner_startup_trials", -1, "an integer >= 0"),
    ("pruner_warmup_epochs", -1, "an integer >= 0"),
    ("seed", -1, "an integer >= 0, or null"),
    ("storage", "", "null .SQLite in the sweep directory., memory, journal"),
    ("study_name", " ", "a name without /"),
    ("study_name", "a/../../b", "a name without /"),
    ("sweep_dir", "", "a directory, or null"),
    ("dry_run", "yes", "true or false"),
    ("timeout", 0, "a number of seconds > 0"),
    ("timeout", float("inf"), "a number of seconds > 0"),
    ("timeout", "1h", "a number of seconds > 0"),
    ("heartbeat_interval", 0, "an integer >= 1 .seconds between a running trial's heartbeats"),
    ("heartbeat_interval", 1.5, "an integer >= 1"),
    ("grace_period", 0, "an integer >= 1 .seconds without a heartbeat"),
    ("grace_period", 60, r"longer than hydra\.sweeper\.heartbeat_interval=60"),  # the default interval
    ("enqueue_trials", {"optimizer.lr": 0.1}, "a list of mappings of search-space keys to values"),
    ("enqueue_trials", [{}], "a list of mappings of search-space keys to values"),
    ("params", {"optimizer.lr": None}, "a mapping of config keys to sweep expressions"),
    ("params", ["optimizer.lr=interval(0,1)"], "a mapping of config keys to sweep expressions"),
]


def test_the_defaults_pass():
    check_settings(DEFAULTS)


@pytest.mark.parametrize(("key", "value"), [
    ("sampler", {"_target_": "optuna.samplers.TPESampler", "n_startup_trials": 10}),
    ("pruner", {"_target_": "optuna.pruners.MedianPruner"}),
    ("timeout", 30), ("timeout", 0.5), ("gpus_per_trial", 0.5), ("gpus_per_trial", 1),
    ("heartbeat_interval", None), ("heartbeat_interval", 1), ("grace_period", 61),
    ("enqueue_trials", [{"optimizer.lr": 0.01, "model.hidden": [64]}]),
])
def test_good_values_pass(key, value):
    check_settings({**DEFAULTS, key: value})


@pytest.mark.parametrize(("key", "value", "expected"), BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_a_bad_value_is_refused_by_name(key, value, expected):
    with pytest.raises(UserError, match=rf"^hydra\.sweeper\.{key}=.* is not valid: it must be {expected}"):
        check_settings({**DEFAULTS, key: value})


def test_every_setting_has_a_rule():
    # `direction` depends on `objective` and is checked with it (SweepDriver._objectives)
    assert set(RULES) | {"direction"} == set(DEFAULTS)
