"""Names of a grid multirun's jobs: `<num>_<the overrides it varies>` (`0_model=mlp,optimizer.lr=0.001`), the
directory under the sweep directory and so the run's name in TensorBoard, so a listing says what each job was.

Which keys a grid varies is read from the multirun's overrides (those with a sweep: `a,b`, `range(...)`,
`choice(...)`, `glob(...)`). The launcher resolves the name in its own process, where trainctl's Hydra callback
recorded them at the multirun's start; a launcher that runs jobs elsewhere reads them from the sweep directory's
multirun.yaml. Names keep to characters that need no quoting in a shell, and a long one is cut with a hash of
the whole, so it stays unique and fits a file name (the job number in front keeps it unique in any case).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Iterable

RESOLVER = "trainctl_job_dir"
MAX_NAME = 96  # characters after the job number: a directory name and a TensorBoard run name, read whole
UNSAFE = re.compile(r"[^A-Za-z0-9._,=+\-]+")  # `/` would make folders; quotes, spaces, `*`, `$` need quoting

_varied: list[str] | None = None  # set at the multirun's start (trainctl.commands.train.Preflight)


def sweep_keys(overrides: Iterable[str]) -> list[str]:
    """The keys of the overrides that sweep over several values, in the order given."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    return [o.key_or_group for o in parsed if o.is_sweep_override()]


def remember_varied(overrides: Iterable[str]) -> None:
    global _varied
    _varied = sweep_keys(overrides)


def _varied_keys(sweep_dir: str) -> list[str]:
    if _varied is not None:
        return _varied
    import yaml

    try:
        saved = yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text())
        return sweep_keys(saved["hydra"]["overrides"]["task"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return []


def short_name(text: str, limit: int = MAX_NAME) -> str:
    """`text` with unsafe characters as `_`, cut to `limit` with a hash of the whole when longer."""
    safe = UNSAFE.sub("_", text).strip("._") or ""
    if len(safe) <= limit:
        return safe
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{safe[:limit - 9].rstrip('._,=')}~{digest}"


def job_dir_name(num: Any, sweep_dir: Any, overrides: Any) -> str:
    """`<num>_<varied overrides>`, or `<num>` when the multirun varies nothing (a single job)."""
    varied = set(_varied_keys(str(sweep_dir)))
    shown = [str(o) for o in overrides if str(o).split("=", 1)[0].lstrip("+~") in varied]
    name = short_name(",".join(shown))
    return f"{num}_{name}" if name else str(num)


def varied_overrides(overrides: Iterable[str], varied: Iterable[str]) -> dict[str, str]:
    """{key: value} of a job's overrides whose key the grid varied."""
    keys = set(varied)
    pairs = (str(o).split("=", 1) for o in overrides if "=" in str(o))
    return {k.lstrip("+~"): v for k, v in pairs if k.lstrip("+~") in keys}
