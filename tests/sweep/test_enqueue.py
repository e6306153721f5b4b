"""`hydra.sweeper.enqueue_trials`: points checked against the search space, enqueued once per study."""

import optuna
import pytest

from trainctl.errors import UserError
from trainctl.sweep.enqueue import check_points, enqueue
from trainctl.sweep.space import parse_search_space

SPACE = parse_search_space(["optimizer.lr=tag(log,interval(1e-4,1e-1))", "model.hidden=choice([8],[8,8])",
                            "trainer.batch_size=choice(16,32)", "trainer.epochs=2"])


def test_points_are_kept_in_the_studys_representation():
    points = check_points([{"optimizer.lr": 0.01, "model.hidden": [8, 8]}, {"trainer.batch_size": 16}], SPACE)
    assert points == [{"optimizer.lr": 0.01, "model.hidden": "[8,8]"}, {"trainer.batch_size": 16}]


BAD = [  # (point, message)
    ({"optimizer.momentum": 0.9}, r"^hydra\.sweeper\.enqueue_trials\[0\] sets optimizer\.momentum, which the search "
                                  r"space does not sweep \(it sweeps optimizer\.lr, model\.hidden, trainer\.batch_size\)"),
    ({"trainer.epochs": 3}, r"sets trainer\.epochs, which the search space does not sweep"),  # fixed, not swept
    ({"optimizer.lr": 0.5}, r"^hydra\.sweeper\.enqueue_trials\[0\]\.optimizer\.lr=0\.5 is outside the search space "
                            r"\(optimizer\.lr: float log \[0\.0001, 0\.1\]\)"),
    ({"trainer.batch_size": 64}, r"trainer\.batch_size=64 is outside the search space \(trainer\.batch_size: choice"),
    ({"model.hidden": [16]}, r"model\.hidden='\[16\]' is outside the search space"),
    ({"optimizer.lr": "fast"}, r"optimizer\.lr='fast' is outside the search space"),
]


@pytest.mark.parametrize(("point", "message"), BAD, ids=[str(p) for p, _ in BAD])
def test_a_point_outside_the_space_is_refused_by_name(point, message):
    with pytest.raises(UserError, match=message):
        check_points([point], SPACE)


def test_enqueued_points_come_first_once_and_within_n_trials():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    points = check_points([{"optimizer.lr": 0.01}, {"optimizer.lr": 0.002, "trainer.batch_size": 32}], SPACE)
    assert enqueue(study, points, n_trials=5) == 2
    first, second = (study.ask(SPACE.distributions) for _ in range(2))
    assert first.params["optimizer.lr"] == 0.01
    assert (second.params["optimizer.lr"], second.params["trainer.batch_size"]) == (0.002, 32)
    for trial in (first, second):
        study.tell(trial, 0.5)
    assert enqueue(study, points, n_trials=5) == 0  # a resumed sweep finds them done
    assert enqueue(optuna.create_study(), points, n_trials=1) == 1  # no room beyond n_trials
