"""What the commands that read a checkpoint share (`eval`, `explain`): their `KEY=VALUE` arguments, and
rebuilding the run a checkpoint came from along the one safe path.

The safe path: the file loads with `weights_only=True`; a `_target_` in its stored config is refused unless the
user names it again or trusts it; the config is typed and validated as `trainctl train` validates it; the model is
built as training built it and gets the EMA weights when the run kept them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainctl.errors import UserError

if TYPE_CHECKING:
    import torch
    from omegaconf import DictConfig

    from trainctl.data.splits import DataBundle
    from trainctl.engine.build import ModelParts


def parse_options(args: list[str], options: tuple[str, ...], usage: str) -> tuple[dict[str, str], list[str]]:
    """Split `KEY=VALUE` arguments into the command's own options and config overrides; `ckpt` is required,
    no option may be empty, and `trust_targets` is a boolean."""
    found, config_overrides = {}, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise UserError(f"'{arg}' is not KEY=VALUE. {usage}")
        if key in options:
            if key in found and found[key] != value:  # which one was meant? never guess
                raise UserError(f"{key}= is given twice ({key}={found[key]} and {key}={value}): give it once")
            found[key] = value
        else:
            config_overrides.append(arg)
    if "ckpt" not in found:
        raise UserError(f"which checkpoint? {usage}")
    for key, value in found.items():
        if key != "trust_targets" and not value:
            raise UserError(f"{key}= is empty: give a value. {usage}")
    if found.get("trust_targets", "false") not in ("true", "false"):
        raise UserError(f"trust_targets={found['trust_targets']} is not a boolean: use true or false")
    return found, config_overrides


def check_exists(ckpt: str) -> None:
    """A `ckpt=` that names nothing is said at once, before the seconds it takes to import torch."""
    try:
        found = Path(ckpt).expanduser().exists()
    except OSError as e:  # a name the system cannot even look up (too long)
        raise UserError(f"ckpt={ckpt[:60]}...: {e.strerror}: give a run directory or a checkpoint file") from None
    if not found:
        raise UserError(f"ckpt={ckpt}: no such file or directory. Give a run directory (runs/<run>: its "
                        "checkpoints/best.pt) or a .pt file from its checkpoints/ folder.")


def check_choice(options: dict[str, str], key: str, choices: tuple[str, ...]) -> str:
    """The option's value (the first choice when not given), refused when it is not one of `choices`."""
    value = options.setdefault(key, choices[0])
    if value not in choices:
        raise UserError(f"{key}={value} is not one of {', '.join(choices)}")
    return value


def check_no_group_choice(overrides: list[str]) -> None:
    """`model=cnn` or `device=cpu` among a checkpoint command's KEY=VALUE pairs: those change settings of the
    stored config, and a whole group's choice is no setting (the weights fit the model the run built); merged
    as one, it replaced the group's node with a word and failed with a message about something else."""
    from trainctl.config.compose import GROUPS

    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") in GROUPS:
            hint = (" This command runs on the CPU: it takes no device=." if key == "device" else
                    f" A setting of it is changed with {key}.KEY=VALUE (the weights fit the {key} the run built).")
            raise UserError(f"{override}: KEY=VALUE pairs here change settings of the checkpoint's stored config "
                            f"(e.g. dataset.root=DIR), and {key} is a whole config group, not a setting.{hint}")


@dataclass
class RestoredRun:
    """A checkpoint's run rebuilt: its config, its data (on the CPU) and its model (on `device`, weights loaded)."""

    path: Path
    state: dict[str, Any]
    cfg: DictConfig
    data: DataBundle
    parts: ModelParts
    device: torch.device

    @property
    def run_dir(self) -> Path:
        from trainctl.engine.resume import run_dir_of

        return run_dir_of(self.path)


def restore_run(ckpt: str, device_name: str, overrides: list[str], trusted: bool) -> RestoredRun:
    """Rebuild the run `ckpt` (a `.pt` file or a run directory) came from, with `overrides` applied to its
    stored config; same seed, so the same validation split."""
    from trainctl.config.compose import typed_config
    from trainctl.config.trust import check_stored_targets, ignored_targets_notice, stored_targets
    from trainctl.config.validate import validate
    from trainctl.data.catalog import build_dataset
    from trainctl.device import select_device
    from trainctl.engine.build import build_model_parts
    from trainctl.engine.checkpoint import checkpoint_file, load_checkpoint, load_weights
    from trainctl.engine.resume import run_dir_of

    path = checkpoint_file(ckpt)
    device = select_device(device_name)
    state = load_checkpoint(path, map_location=device)
    if not isinstance(state.get("config"), dict):
        raise UserError(f"checkpoint {path} holds no config (it was not written by `trainctl train`): trainctl "
                        "cannot tell which model to build for it.")
    check_stored_targets(stored_targets(state["config"]), overrides, trusted, source=f"checkpoint {path}")
    cfg = typed_config(state["config"])
    check_no_group_choice(overrides)
    try:
        cfg.merge_with_dotlist(overrides)
    except Exception as e:  # omegaconf names the key and the expected type
        first = str(e).strip().splitlines()[0]
        raise UserError(f"cannot apply {' '.join(overrides)} to the checkpoint's config: {first}") from None
    validate(cfg, overrides)  # the same checks as `trainctl train`
    notice = ignored_targets_notice(run_dir_of(path), stored_targets(state["config"]), cfg, path,
                                    "The model was built from the checkpoint's config (its code checked above).")
    if notice:
        logging.getLogger("trainctl").warning(notice)
    data = build_dataset(cfg.dataset, cfg.seed)
    parts = build_model_parts(cfg, data, device)  # exactly as validation ran during training
    load_weights(parts.model, state["ema"] if state.get("ema") else state["model"], path)
    return RestoredRun(path, state, cfg, data, parts, device)
