"""`hydra.sweeper.enqueue_trials`: known-good points the study evaluates before the sampler proposes any.

Each point is checked against the search space before anything is written, and enqueued once per study:
running the same command again (a resume) finds them already tried or waiting and adds nothing.
"""

from __future__ import annotations

from typing import Any

import optuna

from trainctl.errors import UserError
from trainctl.sweep.space import SearchSpace, describe, override_text

SETTING = "hydra.sweeper.enqueue_trials"


def _internal(key: str, value: Any, space: SearchSpace, where: str) -> Any:
    """`value` as the study stores it (list choices as their override text), refused when outside the space."""
    dist = space.distributions[key]
    if key in space.verbatim and not isinstance(value, str):
        value = override_text(value)
    try:
        # `_contains` is how Optuna itself tests a fixed parameter against its distribution
        inside = dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):
        inside = False
    if not inside:
        raise UserError(f"{where}.{key}={value!r} is outside the search space ({key}: {describe(dist)}): give a "
                        "value the search could draw")
    return value


def check_points(points: list[dict[str, Any]], space: SearchSpace) -> list[dict[str, Any]]:
    """The points in the study's representation; a key that is not swept, or a value the space cannot hold,
    is refused by name."""
    checked = []
    for number, point in enumerate(points):
        where = f"{SETTING}[{number}]"
        unknown = [key for key in point if key not in space.distributions]
        if unknown:
            raise UserError(f"{where} sets {', '.join(unknown)}, which the search space does not sweep (it sweeps "
                            f"{', '.join(space.distributions)}): enqueue only swept keys; a value every trial "
                            "shares goes on the command line")
        checked.append({key: _internal(key, value, space, where) for key, value in point.items()})
    return checked


def enqueue(study: optuna.Study, points: list[dict[str, Any]], n_trials: int) -> int:
    """Enqueue the points the study has not seen, as far as n_trials leaves room; return how many. The caller
    holds the study lock, so processes sharing the study do not enqueue a point twice."""
    added = 0
    for point in points:
        if len(study.get_trials(deepcopy=False)) >= n_trials:
            break
        before = len(study.get_trials(deepcopy=False))
        study.enqueue_trial(point, skip_if_exists=True)
        added += len(study.get_trials(deepcopy=False)) - before
    return added
