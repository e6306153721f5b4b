"""The regression corpus of bad input, shared by the files of tests/bad_input/ (one file per concern: config values,
command-line arguments, what the issue-23 probe found, files and checkpoints, failures during a run).

Every invocation there must be refused with exit 2, one message that names the culprit, no traceback, and no run
directory. Config values are checked in-process (compose + validate, exactly as `trainctl train` does before it
writes anything); a set of real CLI runs per class of mistake covers what the command adds (argument parsing,
Hydra, exit codes, cleanup). A new regression case goes in the file of its concern."""

from __future__ import annotations

import dataclasses
import subprocess
import typing
from pathlib import Path

import pytest

from trainctl.config.compose import compose, group_options
from trainctl.config.hydra_errors import explain
from trainctl.config.schemas import SCHEMAS
from trainctl.config.schemas.run import TrainConfig
from trainctl.config.validate import validate
from trainctl.errors import UserError

NUMERIC = (int, float)
# The config groups whose numeric settings each corpus file covers (test_values_model_and_data.py checks that
# the two together are every group, so a new group cannot be left out).
MODEL_AND_DATA_GROUPS = ("model", "dataset", "device")
TRAINING_GROUPS = ("optimizer", "scheduler", "loss")


def _numeric_type(field: dataclasses.Field, hints: dict[str, object]) -> type | None:
    kind = hints[field.name]
    if typing.get_origin(kind) is typing.Union:  # Optional[int]
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind if kind in NUMERIC else None


def _bad_values(kind: type, meta: dict[str, object]) -> list[str]:
    """Values that break a numeric field: past each limit, not finite (floats), and not a number at all."""
    bad = ["abc"]
    step = 1 if kind is int else 0.5
    if "ge" in meta:
        bad.append(str(meta["ge"] - step))
    if "gt" in meta:
        bad.append(str(meta["gt"]))
    if "le" in meta:
        bad.append(str(meta["le"] + step))
    if "lt" in meta:
        bad.append(str(meta["lt"]))
    if kind is float:
        bad += ["inf", "nan"]
    return bad


def _fields(schema: type, prefix: str) -> typing.Iterator[tuple[str, type, dict[str, object]]]:
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], f"{prefix}{f.name}.")
        elif (kind := _numeric_type(f, hints)) is not None:
            yield f"{prefix}{f.name}", kind, dict(f.metadata)


def generated_cases(groups: tuple[str, ...], top_level: bool) -> list[tuple[list[str], str]]:
    """(overrides, culprit key) for every numeric setting of each option of `groups`, and of the top level."""
    cases = []
    if top_level:
        for key, kind, meta in _fields(TrainConfig, ""):
            cases += [([f"{key}={v}"], key) for v in _bad_values(kind, meta)]
    for group in groups:
        for option in group_options(group):
            for key, kind, meta in _fields(SCHEMAS[group][option], f"{group}."):
                cases += [([f"{group}={option}", f"{key}={v}"], key) for v in _bad_values(kind, meta)]
    return cases


def assert_value_refused(overrides: list[str], culprit: str) -> None:
    """Composing `overrides` fails (in Hydra or in trainctl's validation) with a message naming `culprit`."""
    try:
        cfg = compose(overrides)
    except Exception as e:  # Hydra's composition errors, as `trainctl train` reports them
        message = explain(e, overrides)
        assert message is not None, f"no user message for {type(e).__name__}: {e}"
    else:
        with pytest.raises(UserError) as raised:
            validate(cfg, overrides)
        message = str(raised.value)
    assert culprit in message


def assert_refused_cleanly(proc: subprocess.CompletedProcess, culprit: str) -> None:
    """Exit 2, no traceback, and `culprit` in stderr (read with its line breaks as spaces)."""
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-1000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert culprit in " ".join(proc.stderr.split()), proc.stderr


def no_runs(cwd: Path) -> bool:
    return not (cwd / "runs").exists() or not any((cwd / "runs").iterdir())
