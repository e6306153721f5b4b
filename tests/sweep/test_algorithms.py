"""Samplers and pruners from `_target_` mappings: the right class with its arguments, the sweep's seed where
the mapping sets none, and every wrong class or argument refused before anything is called."""

import numpy as np
import optuna
import pytest

from trainctl.errors import UserError
from trainctl.sweep.algorithms import make_pruner, make_sampler
from trainctl.sweep.space import parse_search_space

SPACE = parse_search_space(["optimizer.lr=interval(0.001,0.1)"])
TPE = "optuna.samplers.TPESampler"


def seeded_with(sampler, seed):
    """Whether the sampler's random state is the one `seed` gives (Optuna keeps no copy of the seed)."""
    return np.array_equal(sampler._rng.rng.get_state()[1], np.random.RandomState(seed).get_state()[1])


def test_a_tpe_mapping_builds_tpe_with_its_arguments_and_the_sweeps_seed():
    sampler = make_sampler({"_target_": TPE, "n_startup_trials": 10, "multivariate": True, "constant_liar": True},
                           1234, SPACE)
    assert type(sampler) is optuna.samplers.TPESampler
    assert (sampler._n_startup_trials, sampler._multivariate, sampler._constant_liar) == (10, True, True)
    assert seeded_with(sampler, 1234)


def test_a_seed_in_the_mapping_wins_and_joining_processes_offset_either():
    assert seeded_with(make_sampler({"_target_": TPE, "seed": 7}, 1234, SPACE), 7)
    assert seeded_with(make_sampler({"_target_": TPE, "seed": 7}, 1234, SPACE, joined=2), 9)
    assert seeded_with(make_sampler({"_target_": TPE}, 1234, SPACE, joined=2), 1236)
    assert seeded_with(make_sampler("tpe", 1234, SPACE, joined=2), 1236)


def test_a_sampler_without_a_seed_argument_is_built_without_one():
    fixed = make_sampler({"_target_": "optuna.samplers.PartialFixedSampler", "fixed_params": {"x": 1},
                          "base_sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 3}}, 1234, SPACE)
    assert type(fixed) is optuna.samplers.PartialFixedSampler
    assert fixed._fixed_params == {"x": 1} and seeded_with(fixed._base_sampler, 3)


def test_pruner_mappings_build_their_class_with_their_arguments():
    median = make_pruner({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2, "n_warmup_steps": 3},
                         5, 1, 10)
    assert type(median) is optuna.pruners.MedianPruner
    assert (median._n_startup_trials, median._n_warmup_steps) == (2, 3)  # not the pruner_* settings
    patient = make_pruner({"_target_": "optuna.pruners.PatientPruner", "patience": 2,
                           "wrapped_pruner": {"_target_": "optuna.pruners.PercentilePruner", "percentile": 30.0}},
                          5, 1, 10)
    assert patient._patience == 2 and patient._wrapped_pruner._percentile == 30.0


def test_short_names_still_work():
    assert type(make_sampler("random", 0, SPACE)) is optuna.samplers.RandomSampler
    median = make_pruner("median", 4, 2, 10)
    assert (median._n_startup_trials, median._n_warmup_steps) == (4, 2)


BAD_SAMPLERS = [  # (mapping, message)
    ({"_target_": "optuna.samplers.TPESamplr"},
     r"^hydra\.sweeper\.sampler: cannot import _target_ 'optuna\.samplers\.TPESamplr'.*did you mean 'TPESampler'"),
    ({"_target_": TPE, "n_startup": 3},
     r"^hydra\.sweeper\.sampler\.n_startup: optuna\.samplers\.TPESampler has no argument 'n_startup'; did you "
     r"mean 'n_startup_trials'\? \(it takes .*multivariate"),
    ({"_target_": "optuna.pruners.MedianPruner"},
     r"^hydra\.sweeper\.sampler\._target_=optuna\.pruners\.MedianPruner is not an Optuna sampler"),
    ({"_target_": "optuna.samplers.GridSampler", "search_space": {}},
     r"^hydra\.sweeper\.sampler\._target_=optuna\.samplers\.GridSampler: use hydra\.sweeper\.sampler=grid"),
    ({"_target_": "nosuchpackage.Sampler"}, r"^hydra\.sweeper\.sampler: cannot import _target_ 'nosuchpackage"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SAMPLERS, ids=[str(s) for s, _ in BAD_SAMPLERS])
def test_a_bad_sampler_mapping_is_refused_by_name(spec, message):
    with pytest.raises(UserError, match=message):
        make_sampler(spec, 0, SPACE)


def test_a_value_the_class_refuses_is_reported_with_the_setting():
    with pytest.raises(UserError, match=r"^hydra\.sweeper\.pruner: optuna\.pruners\.PercentilePruner\(percentile\) "
                                        r"raised ValueError: .*Fix the class or its settings \(hydra\.sweeper\.pruner\.\*\)"):
        make_pruner({"_target_": "optuna.pruners.PercentilePruner", "percentile": 200.0}, 0, 0, 1)


def test_a_nested_pruner_of_the_wrong_kind_is_refused():
    with pytest.raises(UserError, match=r"^hydra\.sweeper\.pruner\.wrapped_pruner\._target_=optuna\.samplers\."
                                        r"TPESampler is not an Optuna pruner"):
        make_pruner({"_target_": "optuna.pruners.PatientPruner", "patience": 1,
                     "wrapped_pruner": {"_target_": TPE}}, 0, 0, 1)


def test_a_target_that_is_no_optuna_class_is_never_called(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    for kind, build in (("sampler", lambda s: make_sampler(s, 0, SPACE)), ("pruner", lambda s: make_pruner(s, 0, 0, 1))):
        with pytest.raises(UserError, match=rf"_target_=os\.remove is not an Optuna {kind}"):
            build({"_target_": "os.remove", "path": str(victim)})
    assert victim.read_text() == "still here"
