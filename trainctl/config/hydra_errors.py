"""Hydra's and OmegaConf's composition errors, told in trainctl's words: the key, what is wrong, the fix and a
did-you-mean, instead of "To append to your config use +key" (which leads users to add keys nothing reads)."""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any


TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _settings(object_type: object) -> list[str]:
    return [f.name for f in dataclasses.fields(object_type)] if dataclasses.is_dataclass(object_type) else []


def unknown_key_message(key: str, settings: list[str], value: str | None = None) -> str:
    """`trainer.epoch is not a setting of trainer; did you mean 'trainer.epochs'? ...`"""
    from trainctl.config.compose import GROUPS

    parent, _, leaf = key.rpartition(".")
    close = difflib.get_close_matches(leaf, settings, n=1, cutoff=0.5)
    text = f"{key} is not a setting of {parent or 'the config'}"
    text += f"; did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close else "."
    if settings:
        text += f" Its settings: {', '.join(settings)}."
    if parent in GROUPS:
        text += f" `trainctl list {parent}` shows each option's settings."
    if value is not None:
        text += f" (from {key}={value})"
    return text


def _unknown_key(key: str, object_type: object, value: str | None) -> str:
    return unknown_key_message(key, _settings(object_type), value)


def parse_error_message(override: str, error: str) -> str:
    """Hydra's grammar error for one override, naming it and showing it quoted: formulas such as
    `0.5*(1+cos(pi*epoch/10))` hold parentheses that Hydra reads as a sweep or a function call."""
    first = (error.strip().splitlines() or ["cannot parse"])[0]
    key, sep, value = override.partition("=")
    text = f"cannot read the override {override}: {first}."
    if any(value.count(a) != value.count(b) for a, b in ("[]", "()", "{}")):
        text += " Its brackets do not pair up."
    if sep and value and value[0] not in "'\"":
        fixed = key + "='" + value.replace("'", "\\'") + "'"
        return text + (" Quote a value with parentheses, brackets, commas or spaces, inside the shell's "
                       f'quotes: "{fixed}"')
    return text + " Check its brackets and quotes (a value in single quotes inside the shell's quotes is taken as is)"


# Hydra plugins whose options users name from the README, and the package that brings each
PLUGINS = {"submitit_slurm": "hydra-submitit-launcher", "submitit_local": "hydra-submitit-launcher",
           "ray_aws": "hydra-ray-launcher", "rq": "hydra-rq-launcher"}


def _missing_plugin(text: str) -> str | None:
    """`hydra/launcher=submitit_slurm` without its plugin: what is installed and the package to install."""
    found = re.search(r"Could not find '(hydra/\w+)/([^']+)'", text)
    if found is None:
        return None
    group, option = found.groups()
    listed = re.search(rf"Available options in '{group}':\s*(.*?)(?:Config search path|$)", text, re.S)
    options = ", ".join(listed.group(1).split()) if listed else "none"
    package = PLUGINS.get(option)
    fix = f"pip install {package}" if package else "install the Hydra plugin that provides it"
    return (f"{group}={option} is not installed: the options of {group} here are {options}. A Hydra plugin adds "
            f"its options when it is installed: {fix}.")


def explain(exc: BaseException, overrides: list[str]) -> str | None:
    """A user-facing message for a config error raised while Hydra composed the config; None when `exc` is not
    one (a bug, which keeps its traceback)."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

    chain = _chain(exc)
    for e in chain:
        if isinstance(e, ValueError) and str(e).startswith("Only one of --run, --multirun"):
            return f"{e}: -m/--multirun runs, --cfg only prints the config; give one of them"
        if isinstance(e, OSError) and not isinstance(e, MissingConfigException):  # Hydra's is an IOError too
            where = f" {e.filename}" if e.filename else ""
            return (f"cannot create or read{where}: {e.strerror or e}. Check the path (hydra.run.dir, "
                    "hydra.sweep.dir, -cd/--config-dir) exists or can be created and is writable.")
        if type(e).__name__ in ("SearchPathException", "ParserError", "ScannerError", "ConstructorError"):
            mark = getattr(e, "problem_mark", None)  # YAML errors know the file and the line
            where = f" in {mark.name}, line {mark.line + 1}" if mark is not None and mark.name else ""
            problem = f": {e.problem}" if getattr(e, "problem", None) else ""
            return (f"{str(e).strip().splitlines()[0]}{where}{problem} (check -cd/--config-dir and the YAML files "
                    "in it)")
    given = dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
    omega = next((e for e in chain if isinstance(e, OmegaConfBaseException)), None)
    if omega is not None and getattr(omega, "full_key", None):
        key = str(omega.full_key)
        if key == "_dummy_":  # Hydra resolves a config group's choice (`model=${x}`) in a scratch node of that name
            culprit = next((o for o in overrides if "${" in o), "a config group's choice")
            return (f"{culprit}: {str(omega).splitlines()[0]}. A config group's choice (model=..., optimizer=...) "
                    "is an option's name, and a ${...} in it must name a setting that exists; `trainctl list` "
                    "shows the options")
        if key.startswith("hydra.sweeper.params."):  # `+hydra.sweeper.params.trainer.epochs=...` nests dicts
            return (f"{key}: a dotted key inside hydra.sweeper.params is read as nested settings; write the "
                    "space as \"++hydra.sweeper.params={trainer.epochs:'int(interval(1,5))'}\" (a mapping, "
                    "replaced whole), in a sweep config, or on the command line: trainer.epochs='int(interval(1,5))'")
        if isinstance(omega, ConfigKeyError) or "not in" in str(omega).splitlines()[0]:
            text = _unknown_key(key, getattr(omega, "object_type", None), given.get(key))
            parent = key.rpartition(".")[0]
            if parent and given.get(parent):  # name the option chosen: `model.hidden ... of model=cnn`
                text = text.replace(f"is not a setting of {parent}", f"is not a setting of {parent}={given[parent]}", 1)
            presets = [o for o in overrides if o.split("=", 1)[0].lstrip("+") in ("experiment", "debug", "sweep")]
            typed = any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in given)
            if presets and not typed and not key.startswith("hydra."):  # the user never typed it: say where from
                text += (f" It is not on your command line: {', '.join(presets)} sets it, for another option of "
                         f"{key.rpartition('.')[0] or 'the config'}; drop that preset or keep its options.")
            return text
        if isinstance(omega, ValidationError):
            first = str(omega).splitlines()[0]
            wanted = re.search(r"converted to (\w+)", first)
            kind = TYPE_WORDS.get(wanted.group(1), wanted.group(1)) if wanted else "another type"
            found = re.search(r"Value '(.*)' of type", first)
            value = found.group(1) if found else given.get(key, "?")
            return f"{key}={value} is not valid: {key} takes {kind}. {first}"
        return f"{key}: {str(omega).splitlines()[0]}"
    for e in chain:
        if isinstance(e, OverrideParseException):
            return parse_error_message(e.override, str(e))
        if isinstance(e, MissingConfigException):
            plugin = _missing_plugin(str(e))
            return plugin or f"{str(e).strip().splitlines()[0]} See `trainctl list` for the options of each group."
        if isinstance(e, ConfigCompositionException):
            first = str(e).strip().splitlines()[0]
            match = re.search(r"Could not override '([^']+)'", first) or re.search(r"override '([^']+)'", first)
            if match and "." not in match.group(1):
                from trainctl.config.schemas.run import TrainConfig

                return _unknown_key(match.group(1), TrainConfig, given.get(match.group(1)))
            return f"{first} (check the override's key and value; `trainctl train --cfg job` shows the config)"
    if omega is not None:  # e.g. a ${reference} to nothing, found when --cfg resolves the config
        return f"{str(omega).splitlines()[0]}: check the ${{...}} references in your overrides"
    for e in chain:
        text = str(e)
        if isinstance(e, ValueError) and text.startswith("Expecting one subcommand"):
            return ("--shell-completion needs what to do: install=bash (or zsh, fish), uninstall=bash, or query=..., "
                    "e.g. `trainctl train --shell-completion install=bash`")
        if isinstance(e, ValueError) and text.startswith("Config group override must be"):
            group = next((o.split("=", 1)[0] for o in overrides if o.split("=", 1)[0].lstrip("+~") == "hydra"),
                         "a config group")
            return (f"{group}: {text.splitlines()[0]}: a config group takes an option's name (`trainctl list` "
                    "shows them); Hydra's own settings are keys such as hydra.run.dir=...")
    return None


def compose_explained(overrides: list[str]) -> Any:
    """The composed config for a command that composes without Hydra's app (summary, lr-find): Hydra's errors
    told in trainctl's words, as `trainctl train` tells them."""
    from trainctl.config.compose import compose
    from trainctl.errors import UserError

    try:
        return compose(overrides)
    except Exception as e:
        message = explain(e, overrides)
        if message is None:
            raise  # not a config error: a bug, with its traceback
        raise UserError(message) from None
