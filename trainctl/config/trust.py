"""What a file someone else made may not do: name code to run. A checkpoint's stored config and a run
directory's saved overrides are data; a `_target_` in them is a class path that building the run would import
and call. Such a `_target_` is used only when the user names it again on their own command line (or config),
or says `trust_targets=true`. (Loading the file itself never runs code: checkpoints load with
`torch.load(weights_only=True)`, overrides are read with yaml.safe_load.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from trainctl.errors import UserError

TARGET = "_target_"


def stored_targets(container: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(key, class path) of every `_target_` in a plain config container."""
    found = []
    if isinstance(container, dict):
        for key, value in container.items():
            path = f"{prefix}{key}"
            if key == TARGET:
                found.append((prefix.rstrip("."), str(value)))
            else:
                found += stored_targets(value, path + ".")
    elif isinstance(container, list):
        for i, value in enumerate(container):
            found += stored_targets(value, f"{prefix}{i}.")
    return found


def _user_named(key: str, target: str, overrides: Iterable[str]) -> bool:
    wanted = f"{key}.{TARGET}={target}"
    return any(o.lstrip("+") == wanted for o in overrides)


def check_stored_targets(targets: list[tuple[str, str]], overrides: Iterable[str], trusted: bool,
                         source: str) -> None:
    """Refuse `_target_`s that come from `source` (a file) unless the user named each one or trusts them."""
    overrides = list(overrides)
    untrusted = [(k, t) for k, t in targets if not _user_named(k, t, overrides)]
    if untrusted and not trusted:
        named = ", ".join(f"{k}._target_={t}" for k, t in untrusted)
        again = " ".join(f"{k}._target_={t}" for k, t in untrusted)
        raise UserError(f"{source} names code to run ({named}); trainctl does not import classes named by a file "
                        f"it did not write for you. If you trust that file and the code, pass the same on your "
                        f"command line ({again}) or add trust_targets=true.")


def replayed_targets(overrides: Iterable[str]) -> list[tuple[str, str]]:
    """`_target_`s set by saved overrides (`+loss._target_=x`, or a whole node `loss={_target_: x}`)."""
    found = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.endswith(f".{TARGET}") or key == TARGET:
            found.append((key.removesuffix(f".{TARGET}").removesuffix(TARGET), value))
        elif re.search(r"[{,]\s*_target_\s*:", value):  # a whole node given inline: loss={_target_: x}
            found.append((key, value))
    return found


def _file_targets(run_dir: Path) -> list[tuple[str, str, str]]:
    """(file, key, class path) of the `_target_`s a run directory's saved config and overrides name; files that
    do not parse are skipped (they are read as data, never run)."""
    found = []
    for name, read in (("config.yaml", stored_targets), ("overrides.yaml", replayed_targets)):
        path = run_dir / ".hydra" / name
        try:
            data = yaml.safe_load(path.read_text()) if path.is_file() else None
            pairs = read(data) if data is not None else []
        except Exception:  # noqa: BLE001  (garbage YAML, a list of non-strings: nothing this notice can use)
            continue
        found += [(str(path), k, t) for k, t in pairs]
    return found


def ignored_targets_notice(run_dir: Path | None, checkpoint_targets: list[tuple[str, str]], used: Any,
                           checkpoint: Path, built_from: str) -> str | None:
    """One line saying which `_target_`s named by a run's files were ignored (never imported): those of the
    checkpoint's config and of its run directory's `.hydra/` files that the config in use (`used`, a config
    container, or None when only weights are read) does not hold at the same key. None when there are none."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def in_use(key: str, target: str) -> bool:
        node = OmegaConf.select(used, key, default=None) if used is not None else None
        if isinstance(node, ListConfig):  # a list of targets (transforms): in use when any entry names it
            return any(isinstance(item, DictConfig) and str(item.get(TARGET, "")) == target for item in node)
        return isinstance(node, DictConfig) and str(node.get(TARGET, "")) == target

    named = [(str(checkpoint), k, t) for k, t in checkpoint_targets]
    if run_dir is not None:
        named += _file_targets(run_dir)
    ignored = sorted({(k, t): f for f, k, t in named if not in_use(k, t)}.items())
    if not ignored:
        return None
    listed = ", ".join(f"{k}._target_={t} ({f})" for (k, t), f in ignored)
    return f"ignored code named by files of that run, never imported: {listed}. {built_from}"
