"""Which of a run directory's saved overrides `resume=` may replay.

`.hydra/overrides.yaml` is a file in a directory someone may have shared: data, never instructions to Hydra. Hydra
records there only the `key=value` overrides of the task's config (its own flags and `hydra.*` keys go
elsewhere), so anything else in it was put there by hand: a flag (`-m`, `--config-dir`, an abbreviation of
`--experimental-rerun`), a `hydra.*` key or `hydra/` group (logging config, callbacks, search path), a key outside
trainctl's config tree. Each is refused, naming the line. What is left is checked as if typed: a group choice
must be an option of the packaged config tree (no `experiment=../../elsewhere/file`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from trainctl.config.compose import GROUPS
from trainctl.config.schemas.run import TrainConfig
from trainctl.errors import UserError

OTHER_GROUPS = ("experiment", "sweep", "hparams_search", "debug", "callbacks")
KEY = re.compile(r"^(\+{1,2}|~)?([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_]+)*$")


def tree_keys() -> frozenset[str]:
    """The top-level keys and groups of trainctl's config tree."""
    return frozenset({f.name for f in dataclasses.fields(TrainConfig)} | set(GROUPS) | set(OTHER_GROUPS))


def _refusal(override: str) -> str | None:
    """Why `override` may not be replayed, or None."""
    if override.startswith("-"):
        return "is a Hydra flag, not a key=value override"
    key, sep, value = override.partition("=")
    if not sep and not key.startswith("~"):  # `~group` deletes, as typed
        return "is not a key=value override"
    if key.lstrip("+~").startswith(("hydra.", "hydra/")):
        return "sets Hydra's own config (logging, callbacks, search path, directories)"
    match = KEY.match(key.strip())
    if match is None:
        return "is not a key=value override of trainctl's config (its key is not a dotted name)"
    if match.group(2) not in tree_keys():
        return f"sets {match.group(2)}, which is not a key of trainctl's config"
    group = match.group(3) is None and match.group(2) in (*GROUPS, *OTHER_GROUPS)
    if group and any(s in value for s in ("/", "\\", "..", "${")):
        return "names a config file by a path, not an option of trainctl's config tree"
    return None


def check_saved_overrides(saved: list[str], source: Path) -> None:
    """Refuse a saved override that is not a plain `key=value` of trainctl's tree; check the rest as if typed."""
    from trainctl.config.hydra_args import check_hydra_keys, check_number_sizes
    from trainctl.config.overrides import check_group_choices

    check_number_sizes(saved, source=str(source))
    for override in saved:
        why = _refusal(override)
        if why is not None:
            raise UserError(f"{source} holds '{override}', which {why}. resume= replays only key=value overrides of "
                            "trainctl's config, and trainctl never writes such a line there: someone edited this "
                            "run directory. Remove the line if you trust the rest, or do not resume this run.")
    try:
        check_hydra_keys(saved, source=str(source))
        check_group_choices(saved)
    except UserError as e:
        raise UserError(f"{source}: {e}") from None
