"""Hydra's sweep grammar mapped to Optuna distributions, table-driven; `range` excludes its end everywhere."""

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from trainctl.errors import UserError
from trainctl.sweep.space import grid_values, parse_search_space, trial_overrides

CASES = [
    ("a=choice(1,2,3)", CategoricalDistribution((1, 2, 3))),
    ("a=x,y", CategoricalDistribution(("x", "y"))),
    ("model=mlp,cnn,lenet", CategoricalDistribution(("mlp", "cnn", "lenet"))),
    ("a=range(1,5)", IntDistribution(1, 4, step=1)),  # 5 is excluded
    ("a=range(32,129,32)", IntDistribution(32, 128, step=32)),
    ("a=range(32,128,32)", IntDistribution(32, 96, step=32)),  # an end on the grid is excluded too
    ("a=range(0.1,0.5,0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
    ("a=range(10,0,-3)", IntDistribution(1, 10, step=3)),  # 10, 7, 4, 1
    ("a=range(0.5,0.1,-0.2)", FloatDistribution(0.3, 0.5, step=0.2)),  # 0.5, 0.3
    ("a=range(0,1000000000000)", IntDistribution(0, 999999999999)),  # counted, not listed
    ("a=interval(0.1,0.9)", FloatDistribution(0.1, 0.9)),
    ("a=int(interval(1,10))", IntDistribution(1, 10)),
    ("a=tag(log,interval(1e-4,1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
    ("a=tag(log,int(interval(8,256)))", IntDistribution(8, 256, log=True)),
    ("a=choice([16],[64,64])", CategoricalDistribution(("[16]", "[64,64]"))),
]


@pytest.mark.parametrize(("override", "expected"), CASES, ids=[c[0] for c in CASES])
def test_grammar(override, expected):
    space = parse_search_space([override])
    [(key, dist)] = space.distributions.items()
    assert dist == expected


def test_fixed_values_pass_through_and_params_merge_with_the_command_line():
    space = parse_search_space(["trainer.epochs=3", "optimizer.lr=0.1,0.2", "model=cnn"],
                               {"optimizer.lr": "interval(0.001,0.01)", "seed": "7"})
    assert space.fixed == ["seed=7", "trainer.epochs=3", "model=cnn"]
    assert space.distributions == {"optimizer.lr": CategoricalDistribution((0.1, 0.2))}  # command line wins


def test_range_values_are_the_same_for_every_sampler():
    space = parse_search_space(["a=range(0.1,0.5,0.1)", "b=range(1,4)"])
    assert grid_values(space) == {"a": [0.1, 0.2, 0.3, 0.4], "b": [1, 2, 3]}


def test_grid_refuses_continuous_parameters():
    with pytest.raises(UserError, match="sampler=grid needs discrete parameters; a is a continuous interval"):
        grid_values(parse_search_space(["a=interval(0,1)"]))


BAD = [
    ("a=range(5,5)", r"^a=range\(5,5,1\) is empty \(the end is excluded\)"),
    ("a=range(5,1)", r"^a=range\(5,1,1\) is empty"),
    ("a=range(1,5,0)", r"^a=range\(1,5,0\): the step must not be 0"),
    ("a=range(0.1,0.5,0.0)", r"^a=range\(0.1,0.5,0.0\): the step must not be 0"),
    ("a=interval(1,0)", r"^a=interval\(1.0,0.0\): the start is above the end: write interval\(0.0,1.0\)"),
    ("a=int(interval(9,2))", r"^a=interval\(9,2\): the start is above the end"),
    ("a=tag(log,interval(0,1))", r"^a=tag\(log, interval\(0.0,1.0\)\): a log interval needs a start > 0"),
    ("a=glob(*)", r"^a: this sweep form is not supported"),
    ("a=choice(", r"^cannot parse the search space entry 'a=choice\(' \(command line\): no viable alternative"),
    ("a=interval(x,1)", r"^cannot parse the search space entry 'a=interval\(x,1\)' \(command line\): TypeError"),
    ("a=choice()", r"^cannot parse the search space entry 'a=choice\(\)' \(command line\): ValueError"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_search_spaces(override, message):
    with pytest.raises(UserError, match=message):
        parse_search_space([override])


def test_a_bad_entry_in_params_is_named_by_its_setting():
    with pytest.raises(UserError, match=r"^cannot parse the search space entry 'model.hidden=choice\(\[8\]' "
                                        r"\(hydra.sweeper.params.model.hidden\)"):
        parse_search_space(["optimizer.lr=0.1,0.2"], {"model.hidden": "choice([8]"})


def test_trial_overrides_round_trip_through_hydra():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = {"optimizer.lr": 1e-05, "model": "cnn", "flag": True, "model.hidden": "[64,64]", "name": "a b"}
    lines = trial_overrides(params, verbatim={"model.hidden"})
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(lines)}
    assert parsed == {"optimizer.lr": 1e-05, "model": "cnn", "flag": True, "model.hidden": [64, 64], "name": "a b"}
