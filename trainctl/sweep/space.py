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
import math
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
    fixed_values: dict[str, Any] = field(default_factory=dict)  # the same, as key → parsed value
    # Keys whose choices are lists (`model.hidden=choice([16],[64,64])`): Optuna only stores scalars, so these
    # choices are kept as their override text and passed back verbatim.
    verbatim: set[str] = field(default_factory=set)
    # Keys sampled only under a condition, and lists sampled length first (`trainctl.sweep.conditional`).
    conditional: dict[str, Any] = field(default_factory=dict)
    depth: dict[str, Any] = field(default_factory=dict)


def _range_distribution(key: str, sweep: RangeSweep) -> BaseDistribution:
    """The values of range(start, stop, step), counted rather than listed (a long range costs nothing)."""
    text = f"{key}=range({sweep.start},{sweep.stop},{sweep.step})"
    if sweep.step == 0:
        raise UserError(f"{text}: the step must not be 0")
    # Decimal arithmetic: 0.1 + 0.1 + 0.1 must be 0.3 for Optuna's step check.
    start, stop, step = (decimal.Decimal(str(v)) for v in (sweep.start, sweep.stop, sweep.step))
    count = max(0, math.ceil((stop - start) / step))
    if count == 0:
        raise UserError(f"{text} is empty (the end is excluded): make the end lie beyond the start in the "
                        "step's direction")
    low, high = sorted((start, start + step * (count - 1)))
    if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
        return IntDistribution(int(low), int(high), step=int(abs(step)))
    return FloatDistribution(float(low), float(high), step=float(abs(step)))


def _interval_distribution(key: str, sweep: IntervalSweep) -> BaseDistribution:
    log = "log" in sweep.tags
    text = f"{key}={'tag(log, ' if log else ''}interval({sweep.start},{sweep.end}){')' if log else ''}"
    if sweep.start > sweep.end:
        raise UserError(f"{text}: the start is above the end: write interval({sweep.end},{sweep.start})")
    if sweep.start == sweep.end:
        raise UserError(f"{text}: the interval holds one value, so there is nothing to search: give a wider "
                        f"interval, or set {key}={sweep.start} without a sweep")
    if log and sweep.start <= 0:
        raise UserError(f"{text}: a log interval needs a start > 0, not {sweep.start}")
    if isinstance(sweep.start, int) and isinstance(sweep.end, int):
        return IntDistribution(sweep.start, sweep.end, log=log)
    return FloatDistribution(float(sweep.start), float(sweep.end), log=log)


def override_text(value: Any) -> str:
    """A parsed value (lists and dicts included) written back in override syntax."""
    if isinstance(value, list):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_text(v)}" for k, v in value.items()) + "}"
    return format_value(value)


def _check_finite(key: str, sweep: RangeSweep | IntervalSweep) -> None:
    """nan and inf parse as floats, and Optuna would sample from them (or fail deep inside a sampler)."""
    ends = [sweep.start, sweep.stop, sweep.step] if isinstance(sweep, RangeSweep) else [sweep.start, sweep.end]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in ends):
        kind = "range" if isinstance(sweep, RangeSweep) else "interval"
        raise UserError(f"{key}={kind}({','.join(str(v) for v in ends)}): every bound must be a finite number")


def _check_tags(key: str, sweep: Any) -> None:
    """`tag(log, ...)` is the one tag the sweeper reads, and only on interval(): any other tag would be
    silently ignored, and the search would not be the one asked for."""
    tags = set(getattr(sweep, "tags", None) or ())
    unknown = sorted(tags - {"log"})
    if unknown:
        raise UserError(f"{key}: unknown tag(s) {', '.join(unknown)}: the optuna sweeper reads only "
                        "tag(log, interval(a,b)) (a log-uniform search)")
    if tags and not isinstance(sweep, IntervalSweep):
        raise UserError(f"{key}: tag(log, ...) applies to interval(a,b) only; choice() and range() list their "
                        "values as given")


def to_distribution(key: str, sweep: Any) -> BaseDistribution:
    """One sweep expression as an Optuna distribution."""
    _check_tags(key, sweep)
    if isinstance(sweep, (RangeSweep, IntervalSweep)):
        _check_finite(key, sweep)
    if isinstance(sweep, ChoiceSweep):
        choices = tuple(sweep.list)
        if any(isinstance(c, (list, dict)) for c in choices):
            return CategoricalDistribution(tuple(override_text(c) for c in choices))
        return CategoricalDistribution(choices)
    if isinstance(sweep, RangeSweep):
        return _range_distribution(key, sweep)
    if isinstance(sweep, IntervalSweep):
        return _interval_distribution(key, sweep)
    raise UserError(f"{key}: this sweep form is not supported by the optuna sweeper "
                    "(use choice, range, interval, tag(log, interval) or int(interval))")


def _parse(parser: OverridesParser, line: str, source: str) -> Override:
    try:
        return parser.parse_override(line)
    except Exception as e:  # Hydra's grammar error: its message says where in the line
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot parse the search space entry {line!r} ({source}): {message}. See the sweep "
                        "grammar: choice(a,b), range(a,b[,step]), interval(a,b), tag(log,interval(a,b))") from None


def parse_search_space(arguments: list[str], params: dict[str, Any] | None = None) -> SearchSpace:
    """Search space from `hydra.sweeper.params` and the command line (the command line wins on a clash)."""
    parser = OverridesParser.create()
    overrides = [_parse(parser, f"{k}={v}", f"hydra.sweeper.params.{k}") for k, v in (params or {}).items()]
    overrides += [_parse(parser, line, "command line") for line in arguments]
    space = SearchSpace()
    by_key: dict[str, Override] = {}
    for override in overrides:
        by_key[override.get_key_element()] = override
    for key, override in by_key.items():
        if override.is_sweep_override():
            value = override.value()
            try:
                space.distributions[key] = to_distribution(key, value)
            except ValueError as e:  # any range Optuna refuses that the rules above did not foresee
                raise UserError(f"{override.input_line}: {e}") from None
            if isinstance(value, ChoiceSweep) and any(isinstance(c, (list, dict)) for c in value.list):
                space.verbatim.add(key)
        else:
            space.fixed.append(override.input_line)
            space.fixed_values[key] = override.value()
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
        return quoted(value)
    return str(value)


def quoted(text: str) -> str:
    """`text` as a quoted override value: always a string, whatever it looks like (`null`, `1`, `a,b`)."""
    return "'" + text.replace("'", "\\'") + "'"


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
