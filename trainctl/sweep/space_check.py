"""The search space checked against the config before the first trial: every choice and both ends of every
range are composed and validated as a trial's config would be, so `trainer.epochs=choice(a,b)` or
`optimizer.lr=interval(-1,1)` is refused with the key's own message instead of failing every trial and leaving a
study on disk.
"""

from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from trainctl.errors import UserError
from trainctl.sweep.space import SearchSpace, format_value

MAX_COMPOSITIONS = 16  # each costs one Hydra composition (~50 ms); keys with more choices are checked in part


def _candidates(key: str, dist: BaseDistribution, verbatim: bool) -> list[str]:
    """The values of one parameter that stand for all of them: every choice, or the two ends of a range."""
    if isinstance(dist, CategoricalDistribution):
        return [str(c) if verbatim else format_value(c) for c in dist.choices]
    return [format_value(v) for v in dict.fromkeys((dist.low, dist.high))]


def candidate_overrides(space: SearchSpace) -> list[list[str]]:
    """A few trials' overrides that together hold every candidate value of every parameter."""
    values = {key: _candidates(key, dist, key in space.verbatim) for key, dist in space.distributions.items()}
    count = min(max((len(v) for v in values.values()), default=0), MAX_COMPOSITIONS)
    return [[*space.fixed, *(f"{key}={v[i % len(v)]}" for key, v in values.items())] for i in range(count)]


def _integer_hint(space: SearchSpace, message: str) -> str:
    """interval(1,3) samples floats; an integer setting needs int(interval(1,3))."""
    for key, dist in space.distributions.items():
        if isinstance(dist, FloatDistribution) and f"{key} takes an integer" in message:
            return f". For integers write {key}=int(interval({int(dist.low)},{int(dist.high)}))"
    return ""


def check_space(space: SearchSpace, compose: Callable[[list[str]], DictConfig],
                extra: list[list[str]] = ()) -> None:
    """Compose and validate the candidate trials; raise one UserError for the first that a trial would fail.
    `compose` turns a trial's overrides into its full config (the launcher's own composition)."""
    from trainctl.config.hydra_errors import explain
    from trainctl.config.validate import config_problems, override_problems
    from trainctl.data.locate import check_available

    keys = {*space.distributions, *space.conditional, *space.depth}
    for overrides in [*candidate_overrides(space), *extra]:  # extra: conditional and depth keys, conditions met
        swept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in keys]
        try:
            config = compose(overrides)
        except Exception as e:  # Hydra's composition errors; anything else is a bug and keeps its traceback
            message = explain(e, overrides)
            if message is None:
                raise
            raise UserError(f"the search space does not fit the config: {message} (a trial with "
                            f"{' '.join(swept)}){_integer_hint(space, message)}") from None
        task = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
        problems = [*override_problems(task, swept), *config_problems(task)]
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise UserError(f"the search space does not fit the config; a trial with {' '.join(swept)} would "
                            f"fail:\n{lines}\nFix the search space (hydra.sweeper.params or the command line).")
        check_available(task.dataset)
