"""Hydra's sweep grammar → Optuna distributions.

    a,b,c  or  choice(a,b,c)     categorical
    range(a,b[,step])            a, a+step, ... up to but EXCLUDING b (as Python's range and Hydra's grid
                                 sweeps); mapped to a stepped Int/Float distribution whose last value is the
                                 last one the range yields, so every sampler (grid included) sees the same set
    interval(a,b)                float in [a, b]; int(interval(a,b)) integer in [a, b]
    tag(log, interval(a,b))      the same on a log scale
    anything else                a fixed override, passed to every trial unchanged
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainctl.errors import UserError


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)  # overrides every trial gets as they are
    # Keys whose choices are lists (`model.hidden=choice([16],[64,64])`): Optuna only stores scalars, so these
    # choices are kept as their override text and passed back verbatim.
    verbatim: set[str] = field(default_factory=set)


def _range_distribution(key: str, sweep: RangeSweep) -> BaseDistribution:
    values = list(sweep.range())
    if not values:
        raise UserError(f"{key}=range({sweep.start},{sweep.stop},{sweep.step}) is empty (the end is excluded)")
    low, high, step = min(values), max(values), abs(sweep.step)
    if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
        return IntDistribution(int(low), int(high), step=int(step))
    # Decimal arithmetic: 0.1 + 0.1 + 0.1 must be 0.3 for Optuna's step check.
    d_low, d_step = decimal.Decimal(str(sweep.start)), decimal.Decimal(str(step))
    d_high = d_low + d_step * (len(values) - 1) if sweep.step > 0 else decimal.Decimal(str(high))
    if sweep.step < 0:
        d_low = decimal.Decimal(str(sweep.start)) - d_step * (len(values) - 1)
    return FloatDistribution(float(d_low), float(d_high), step=float(d_step))


def override_text(value: Any) -> str:
    """A parsed value (lists and dicts included) written back in override syntax."""
    if isinstance(value, list):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_text(v)}" for k, v in value.items()) + "}"
    return format_value(value)


def to_distribution(key: str, sweep: Any) -> BaseDistribution:
    """One sweep expression as an Optuna distribution."""
    if isinstance(sweep, ChoiceSweep):
        choices = tuple(sweep.list)
        if any(isinstance(c, (list, dict)) for c in choices):
            return CategoricalDistribution(tuple(override_text(c) for c in choices))
        return CategoricalDistribution(choices)
    if isinstance(sweep, RangeSweep):
        return _range_distribution(key, sweep)
    if isinstance(sweep, IntervalSweep):
        log = "log" in sweep.tags
        if log and sweep.start <= 0:
            raise UserError(f"{key}: a log interval needs a start > 0, not {sweep.start}")
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise UserError(f"{key}: this sweep form is not supported by the optuna sweeper "
                    "(use choice, range, interval, tag(log, interval) or int(interval))")


def parse_search_space(arguments: list[str], params: dict[str, Any] | None = None) -> SearchSpace:
    """Search space from `hydra.sweeper.params` and the command line (the command line wins on a clash)."""
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    parser = OverridesParser.create()
    try:
        overrides: list[Override] = parser.parse_overrides(lines)
    except Exception as e:  # Hydra's own grammar error: its message says where
        raise UserError(f"cannot parse the search space: {e}") from None
    space = SearchSpace()
    by_key: dict[str, Override] = {}
    for override in overrides:
        by_key[override.get_key_element()] = override
    for key, override in by_key.items():
        if override.is_sweep_override():
            space.distributions[key] = to_distribution(key, override.value())
            value = override.value()
            if isinstance(value, ChoiceSweep) and any(isinstance(c, (list, dict)) for c in value.list):
                space.verbatim.add(key)
        else:
            space.fixed.append(override.input_line)
    return space


def format_value(value: Any) -> str:
    """A sampled value as override text Hydra parses back to the same value."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and any(c in value for c in " ,()[]{}=:'\""):
        return "'" + value.replace("'", "\\'") + "'"
    return str(value)


def trial_overrides(params: dict[str, Any], verbatim: set[str] = frozenset()) -> list[str]:
    return [f"{key}={value if key in verbatim else format_value(value)}" for key, value in params.items()]


def grid_values(space: SearchSpace) -> dict[str, list[Any]]:
    """Every value of every parameter, for the grid sampler (which needs discrete parameters)."""
    grid: dict[str, list[Any]] = {}
    for key, dist in space.distributions.items():
        if isinstance(dist, CategoricalDistribution):
            grid[key] = list(dist.choices)
        elif isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None and not dist.log:
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            grid[key] = [type(dist.low)(dist.low + i * dist.step) if isinstance(dist, IntDistribution)
                         else float(decimal.Decimal(str(dist.low)) + i * decimal.Decimal(str(dist.step)))
                         for i in range(count)]
        else:
            raise UserError(f"sampler=grid needs discrete parameters; {key} is a continuous interval: "
                            "use choice(...) or range(...), or another sampler")
    return grid


def describe(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return "choice(" + ", ".join(map(str, dist.choices)) + ")"
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    scale = " log" if getattr(dist, "log", False) else ""
    step = f" step {dist.step}" if getattr(dist, "step", None) not in (None, 1) or kind == "float" and dist.step else ""
    return f"{kind}{scale} [{dist.low}, {dist.high}]{step}"
