"""Resuming a run: find its checkpoint, replay its overrides, refuse silent config changes (no torch here:
`trainctl train resume=...` rewrites the command line before Hydra starts). Restoring the state is
`trainctl.engine.checkpoint.restore`."""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from trainctl.config.overrides import quote_value, unquote_value
from trainctl.config.replay import check_saved_overrides
from trainctl.config.schemas.models import ADDED_KEYS
from trainctl.config.trust import check_stored_targets, replayed_targets
from trainctl.errors import UserError
from trainctl.files import check_not_locked

PERMISSIONS = ("trust_targets", "resume_allow_changes")  # never replayed from a saved run
COMPARED = ("model", "dataset")  # what must match for the resumed run to be the same run
# Keys older checkpoints lack, with the value that means what they did.
NEWER_KEYS = {"model.freeze": [], "dataset.train_size": None, "dataset.train_per_class": None,
              "dataset.train_transforms": [], "dataset.eval_transforms": [], "dataset.label_transforms": [],
              "dataset.streams": None, "dataset.target": "cos", "dataset.frequencies": [0.5, 1.5], **ADDED_KEYS}


def checkpoint_path(resume: str) -> Path:
    """`resume=` takes a run directory (its checkpoints/last.pt) or a checkpoint file."""
    path = Path(resume).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise UserError(f"resume={resume}: no checkpoint at {path}. Give a run directory (runs/<run>) or a "
                        ".pt file from its checkpoints/ folder.")
    return path


def run_dir_of(checkpoint: Path) -> Path:
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(f"{prefix}.{key}", item))
        return out
    return {prefix: value}


def config_differences(saved: dict[str, Any], cfg: DictConfig) -> list[str]:
    now = OmegaConf.to_container(cfg, resolve=True)
    lines = []
    for section in COMPARED:
        before, after = _flatten(section, saved.get(section, {})), _flatten(section, now.get(section, {}))
        before.update({k: v for k, v in NEWER_KEYS.items() if k in after and k not in before})
        for key in sorted(set(before) | set(after)):
            if before.get(key, "<absent>") != after.get(key, "<absent>"):
                lines.append(f"  {key}: {before.get(key, '<absent>')!r} in the checkpoint, {after.get(key, '<absent>')!r} now")
    return lines


def check_same_run(saved: dict[str, Any], cfg: DictConfig, checkpoint: Path) -> None:
    diff = config_differences(saved, cfg)
    if diff and not cfg.resume_allow_changes:
        raise UserError(f"resume={cfg.resume}: the model/dataset config differs from {checkpoint}'s:\n"
                        + "\n".join(diff) + "\nResume with the original values, or add resume_allow_changes=true.")


def check_no_links(run_dir: Path) -> None:
    """A resumed run writes into its directory (its log, event files, checkpoints, metrics): a symbolic link
    there would carry those writes, or the reads of its checkpoints, to wherever it points. trainctl never
    makes one, so a link means someone else shaped this directory: refuse it, naming the link."""
    # Files a resumed run appends to, rewrites or reads at its end (the test pass loads best.pt): a folder or a
    # fifo there would fail the run after it trained, or hang it.
    for name in ("train.log", "metrics.json", "model.txt", "checkpoints/best.pt", "checkpoints/last.pt", ".lock"):
        if (run_dir / name).exists() and not (run_dir / name).is_file() and not (run_dir / name).is_symlink():
            raise UserError(f"{run_dir / name} is not a file: it is not a run directory trainctl wrote (or it was "
                            "edited since); remove it, or do not resume this run.")
    for path in sorted(run_dir.rglob("*")):
        if not path.is_symlink() and not path.is_file() and not path.is_dir():  # a fifo, socket or device
            raise UserError(f"{path} is a special file (a fifo, socket or device), which trainctl never writes in a "
                            "run directory: remove it, or do not resume this run.")
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link (to {os.readlink(path)}): trainctl never makes links in a "
                            "run directory, and resuming writes into it, so a link would carry those writes (or "
                            "the checkpoint read) elsewhere. Replace the link by the file itself, or do not resume "
                            "this run.")


def resume_overrides(args: list[str]) -> list[str]:
    """For `trainctl train resume=RUN ...`: the original run's overrides, then the new ones (which win), and
    Hydra told to keep writing into that run's directory without replacing its saved config."""
    value = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), None)
    if value is None or value == "null":
        return args
    if value in ("", "''", '""'):
        raise UserError("resume= needs a run directory or a checkpoint, e.g. resume=runs/<run>")
    if any(a in ("-m", "--multirun") for a in args):
        raise UserError("resume= continues one run and cannot be part of a multirun (-m): resume each run "
                        "with its own `trainctl train resume=<run dir>`.")
    value = unquote_value(value)
    given = Path(value).expanduser()
    check_not_locked(given if given.is_dir() else run_dir_of(given))  # before "no checkpoint yet": it may be starting
    run_dir = run_dir_of(checkpoint_path(value))
    check_no_links(run_dir)
    saved = run_dir / ".hydra" / "overrides.yaml"
    try:
        base = yaml.safe_load(saved.read_text()) if saved.is_file() else []
    except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: bytes that are no UTF-8 text
        raise UserError(f"cannot read {saved}: {str(e).splitlines()[0]}. It is not a run directory trainctl "
                        "wrote; resume from a checkpoint file instead.") from None
    if not isinstance(base, list) or not all(isinstance(o, str) for o in base):
        raise UserError(f"{saved} is not a list of overrides: it is not a run directory trainctl wrote.")
    check_saved_overrides(base, saved)
    check_stored_targets(replayed_targets(base), args, trusted="trust_targets=true" in args,
                         source=f"the saved overrides of {run_dir}")

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    # init_from started the run; resuming continues from its own checkpoint instead. A permission (trust a file's
    # code, accept a changed config) comes from the person resuming, never from the directory being resumed.
    merged = {key(o): o for o in base if key(o) not in ("resume", "init_from", *PERMISSIONS)}
    flags = [a for a in args if a.startswith("-")]
    merged.update({key(a): a for a in args if not a.startswith("-")})
    # The log file opens at its first line, not when Hydra sets up logging: a resume that stops before training
    # (a corrupt checkpoint, a changed config, a finished run) then creates no train.log where there was none
    # and touches no existing one. Only for trainctl's own job logging, whose file handler this names.
    lazy_log = [] if "hydra/job_logging" in merged else ["++hydra.job_logging.handlers.file.delay=true"]
    return [*flags, *merged.values(), f"hydra.run.dir={quote_value(str(run_dir))}", "hydra.output_subdir=null",
            *lazy_log]
