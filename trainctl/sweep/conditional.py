"""Conditional and loop-defined search spaces, as the tutorial's Optuna objective writes them with `if` and `for`,
declared in the sweep config and sampled with Optuna's define-by-run API (`trial.suggest_*`, one call per value,
in order), so a key that is not sampled is absent from the trial rather than a dummy value:

    hydra:
      sweeper:
        params:
          optimizer: choice(sgd, adam)
        conditional:                      # sampled only when the other key has one of the given values
          optimizer.momentum:
            when: {optimizer: sgd}
            values: interval(0.0, 0.95)
        depth:                            # sample n, then n widths: a list of n values
          model.hidden:
            count: range(1, 4)
            width: choice(16, 32, 64)

A depth key's parameters are `<key>.count` and `<key>.0`, `<key>.1`, ... (Optuna's names, which trials.csv,
sweep-report and the importances use); the trial gets `model.hidden=[w0,w1,...]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import optuna
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainctl.errors import UserError
from trainctl.sweep.space import SearchSpace, format_value, override_text, parse_search_space, trial_overrides

PREFIX = "hydra.sweeper"


@dataclass
class Condition:
    when: dict[str, list[Any]]  # key → the values for which this key is sampled
    distribution: BaseDistribution
    verbatim: bool


@dataclass
class Depth:
    count: BaseDistribution  # of positive integers
    width: BaseDistribution
    verbatim: bool


def _one(key: str, expression: Any, where: str) -> tuple[BaseDistribution, bool]:
    space = parse_search_space([f"{key}={expression}"])
    if key not in space.distributions:
        raise UserError(f"{where}={expression} is not a sweep expression: give choice(...), range(...) or "
                        "interval(...)")
    return space.distributions[key], key in space.verbatim


def _values(distribution: BaseDistribution) -> Sequence[Any] | None:
    """The values a distribution takes; an integer range as a `range`, never listed (seed=range(0,1e11))."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return range(distribution.low, distribution.high + 1, distribution.step)
    return None


def add_structure(space: SearchSpace, conditional: dict[str, Any] | None, depth: dict[str, Any] | None) -> None:
    """Parse `hydra.sweeper.conditional` and `hydra.sweeper.depth` into `space`, checked against its keys."""
    conditional, depth = (OmegaConf.to_container(v, resolve=True) if isinstance(v, (DictConfig, ListConfig)) else v
                          for v in (conditional, depth))
    for key, entry in (conditional or {}).items():
        where = f"{PREFIX}.conditional.{key}"
        if not isinstance(entry, dict) or set(entry) != {"when", "values"} or not isinstance(entry["when"], dict) \
                or not entry["when"]:
            raise UserError(f"{where} must be {{when: {{<key>: <value or list of values>}}, values: <sweep "
                            "expression>}, e.g. {when: {optimizer: sgd}, values: interval(0.0, 0.95)}")
        if key in space.distributions or key in space.fixed_values:
            raise UserError(f"{where}: {key} is also in the search space or set for every trial: sample it in one "
                            "place")
        when: dict[str, list[Any]] = {}
        for other, wanted in entry["when"].items():
            options = _values(space.distributions[other]) if other in space.distributions else (
                [space.fixed_values[other]] if other in space.fixed_values else None)
            if options is None:
                raise UserError(f"{where}.when.{other}: {other} is not a swept choice (or a fixed value) of this "
                                "sweep, so the condition cannot be decided")
            wanted = list(wanted) if isinstance(wanted, (list, tuple)) else [wanted]
            missing = [w for w in wanted if w not in options]
            if missing:
                raise UserError(f"{where}.when.{other}: {missing} never occurs: {other} takes "
                                f"{', '.join(map(str, options[:20]))}{' ...' if len(options) > 20 else ''}")
            when[other] = wanted
        space.conditional[key] = Condition(when, *_one(key, entry["values"], f"{where}.values"))
    for key, entry in (depth or {}).items():
        where = f"{PREFIX}.depth.{key}"
        if not isinstance(entry, dict) or set(entry) != {"count", "width"}:
            raise UserError(f"{where} must be {{count: <sweep expression of whole numbers>, width: <sweep "
                            "expression>}, e.g. {count: range(1, 4), width: choice(16, 32, 64)}")
        if key in space.distributions or key in space.fixed_values or key in space.conditional:
            raise UserError(f"{where}: {key} is also sampled or set elsewhere in the sweep: sample it in one place")
        count, _ = _one(f"{key}.count", entry["count"], f"{where}.count")
        counts = _values(count)
        whole = bool(counts) and (counts[0] >= 0 if isinstance(counts, range) else  # a range: no walk over it
                                  all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts))
        if not counts or not whole:
            raise UserError(f"{where}.count={entry['count']} must give whole numbers >= 0, e.g. range(1, 4)")
        space.depth[key] = Depth(count, *_one(key, entry["width"], f"{where}.width"))


def structured(space: SearchSpace) -> bool:
    return bool(space.conditional or space.depth)


def suggest(trial: optuna.trial.BaseTrial, name: str, distribution: BaseDistribution) -> Any:
    """One value, define-by-run."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    assert isinstance(distribution, FloatDistribution)
    return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step,
                               log=distribution.log)


def ask(study: optuna.Study, space: SearchSpace) -> optuna.trial.Trial:
    """The next trial, with every value of the space sampled: the plain keys, then the conditional ones whose
    condition holds, then each depth and its widths."""
    if not structured(space):
        return study.ask(space.distributions)
    trial = study.ask()
    values = {key: suggest(trial, key, dist) for key, dist in space.distributions.items()}
    values.update(space.fixed_values)
    for key, condition in space.conditional.items():
        if all(values.get(other) in wanted for other, wanted in condition.when.items()):
            values[key] = suggest(trial, key, condition.distribution)
    for key, depth in space.depth.items():
        for i in range(suggest(trial, f"{key}.count", depth.count)):
            suggest(trial, f"{key}.{i}", depth.width)
    return trial


def _width_text(value: Any, verbatim: bool) -> str:
    return str(value) if verbatim else override_text(value)


def overrides_of(params: dict[str, Any], space: SearchSpace) -> list[str]:
    """A trial's sampled params as config overrides: depth keys gathered back into their list."""
    depth_names = {f"{key}.count" for key in space.depth} | {
        name for name in params for key in space.depth if name.startswith(f"{key}.") and name[len(key) + 1:].isdigit()}
    plain = {k: v for k, v in params.items() if k not in depth_names}
    verbatim = set(space.verbatim) | {k for k, c in space.conditional.items() if c.verbatim}
    lines = trial_overrides(plain, verbatim)
    for key, depth in space.depth.items():
        count = params.get(f"{key}.count")
        if count is not None:
            widths = [_width_text(params[f"{key}.{i}"], depth.verbatim) for i in range(int(count))]
            lines.append(f"{key}=[{','.join(widths)}]")
    return lines


def candidates(space: SearchSpace) -> list[list[str]]:
    """Trials that together hold both ends of every conditional value (with its condition met) and the largest
    depth at each end of its widths, for the check before the first trial."""
    found = []
    first = {key: str(values[0]) if key in space.verbatim else format_value(values[0]) for key, values in
             ((k, _values(d) or [d.low]) for k, d in space.distributions.items())}
    for key, condition in space.conditional.items():
        base = {**first, **{other: format_value(wanted[0]) for other, wanted in condition.when.items()}}
        ends = _values(condition.distribution) or [condition.distribution.low, condition.distribution.high]
        for value in dict.fromkeys([ends[0], ends[-1]]):
            text = str(value) if condition.verbatim else format_value(value)
            found.append([*space.fixed, *(f"{k}={v}" for k, v in base.items()), f"{key}={text}"])
    for key, depth in space.depth.items():
        counts = _values(depth.count) or [0]
        most = counts[-1] if isinstance(counts, range) else max(counts)  # a range ascends: no walk over it
        widths = _values(depth.width) or [depth.width.low, depth.width.high]
        for width in dict.fromkeys([widths[0], widths[-1]]):
            text = _width_text(width, depth.verbatim)
            found.append([*space.fixed, *(f"{k}={v}" for k, v in first.items()), f"{key}=[{','.join([text] * most)}]"])
    return found
