"""Hydra's own command-line flags and keys, checked before Hydra sees them.

Hydra parses its flags with argparse, which accepts any unambiguous prefix of a long flag: `--exp=FILE` is
`--experimental-rerun FILE`, which unpickles FILE. trainctl reads Hydra's flags itself (config dirs, `-m`), so an
abbreviation would also slip past those checks: every abbreviated long flag is refused, naming the full one.
Keys under `hydra.` that name code are checked too: a logging handler, formatter or filter that names a class is
refused (a config dir of the user's own is the place for those), and a Hydra callback must be a class derived
from Hydra's `Callback`, checked before Hydra builds it (`+hydra.callbacks.x._target_=os.system` is an error).
"""

from __future__ import annotations

import re
from functools import lru_cache

from trainctl.errors import UserError

REFUSED_FLAGS = {"--experimental-rerun": "it unpickles a file, and a pickle can run any code; run the "
                                         "command again, or resume=<run dir> to continue a run"}
LOGGING = ("hydra.job_logging", "hydra.hydra_logging")
# In a logging config these name a class or factory that `logging.config.dictConfig` imports and calls.
CODE_KEYS = ("class", "()", "_target_")


@lru_cache(maxsize=1)
def long_flags() -> tuple[str, ...]:
    """Hydra's long flags, from Hydra's own parser so that a new Hydra's flags count too."""
    from hydra._internal.utils import get_args_parser

    return tuple(sorted(s for s in get_args_parser()._option_string_actions if s.startswith("--")))


def check_flags(args: list[str]) -> None:
    """Refuse `--experimental-rerun` and any abbreviation of a Hydra long flag (`--exp`, `--config-d=DIR`), and
    numbers too long for any parser."""
    check_number_sizes(args)
    for arg in args:
        if arg == "--" or not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0]
        full = [f for f in long_flags() if f.startswith(name)]
        for flag, why in REFUSED_FLAGS.items():
            if flag in full:
                read_as = "" if name == flag else f" ({name} is short for it)"
                raise UserError(f"trainctl train does not take {flag}{read_as}: {why}.")
        if name not in full and full:
            raise UserError(f"{arg}: write the flag in full ({' or '.join(full)}); trainctl does not accept "
                            "abbreviated flags, so that what runs is what you read.")


HUGE_NUMBER = re.compile(r"\d{1000,}")  # Python refuses to read integers past 4,300 digits; settings stop at 64 bits


def check_number_sizes(args: list[str], source: str = "the command line") -> None:
    """Refuse a number of a thousand digits or more before any parser meets it (Python's integer reader raises
    past 4,300 digits, deep inside Hydra's)."""
    for arg in args:
        found = HUGE_NUMBER.search(arg)
        if found:
            key = arg.split("=", 1)[0] if "=" in arg else arg[:40]
            raise UserError(f"{key} (on {source}) holds a number of {len(found.group())} digits: trainctl's settings "
                            "take integers up to 64 bits and ordinary floats; give a smaller value.")


def check_hydra_keys(args: list[str], source: str = "the command line") -> None:
    """Refuse `hydra.callbacks.*` and logging handlers, formatters or filters that name a class (or a file)."""
    for arg in args:
        if arg.startswith("-"):
            continue
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~").strip()
        if key == "hydra.callbacks" or key.startswith("hydra.callbacks."):
            _check_hydra_callback(arg, key, value, source)
            continue
        if not key.startswith(LOGGING):
            continue
        parts = key.split(".")
        names_code = parts[-1] in CODE_KEYS or (sep and re.search(r"(^|[{,\s])['\"]?(class|\(\)|_target_)"
                                                                   r"['\"]?\s*:", value))
        if names_code or (len(parts) == 3 and parts[2] in ("handlers", "formatters", "filters") and sep):
            raise UserError(f"{arg} (from {source}): a logging handler, formatter or filter names a class to "
                            "import, which trainctl does not take from overrides. Change "
                            "levels instead (hydra.job_logging.root.level=DEBUG), or use a config dir of your "
                            "own (-cd DIR) with a hydra/job_logging file.")


def _check_hydra_callback(arg: str, key: str, value: str, source: str) -> None:
    """A Hydra callback added on the command line (`+hydra.callbacks.NAME._target_=pkg.Class`, as tests add fake
    GPUs) must be a class derived from Hydra's Callback, checked before Hydra builds it; trainctl's own preflight
    callback may not be removed or replaced, and a whole `hydra.callbacks` node may not be set."""
    parts = key.split(".")
    if arg.lstrip().startswith("~") or len(parts) == 2 or parts[2] == "preflight":
        raise UserError(f"{arg} (from {source}): trainctl's own Hydra callback (its checks before anything is "
                        "written) may not be removed or replaced; add yours with +hydra.callbacks.NAME._target_=...")
    inline = re.search(r"_target_['\"]?\s*:\s*['\"]?([\w.]+)", value)
    path = value.strip().strip("'\"") if parts[-1] == "_target_" else inline.group(1) if inline else None
    if path is not None:
        from trainctl.config.targets import check_callback_class

        check_callback_class(path, ".".join(parts[:3]))
