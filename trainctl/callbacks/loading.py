"""A user's callbacks, without editing trainctl.

From the config, a mapping of names to `_target_` nodes (a config group file, a `-cd` config, or overrides):

    callbacks:
      recorder: {_target_: mypkg.Recorder, path: events.txt}

and from installed packages, which declare a class (or factory) taking no arguments:

    [project.entry-points."trainctl.callbacks"]
    recorder = "mypkg:Recorder"

An installed callback is active in every run; `+callbacks.recorder=null` switches it off (the config's
entries win over the entry points of the same name).
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig

from trainctl.config.targets import builds, import_target, instantiate_target
from trainctl.engine.events import EVENTS, Callback, StopTraining
from trainctl.errors import UserError, what_raised

ENTRY_POINT_GROUP = "trainctl.callbacks"


def _has_events(obj: Any) -> bool:
    """A callback (instance or class) defines at least one event method."""
    return any(callable(getattr(obj, event, None)) for event in EVENTS)


def _defines(callback: Any, event: str) -> bool:
    """The callback has its own method for `event` (not Callback's no-op)."""
    method = getattr(type(callback), event, None)
    return callable(getattr(callback, event, None)) and method is not getattr(Callback, event, None)


def _guard(name: str, origin: str, event: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` with its failures told as the user's callback's: one line naming it and the event, the
    traceback in the run's train.log. Stops the engine asks for (StopTraining) and UserErrors pass as they are."""
    def call(self: Callback, *args: Any) -> Any:
        try:
            return method(*args)
        except (StopTraining, UserError):
            raise
        except Exception as e:
            logging.getLogger("trainctl.file").error("callback '%s' failed in %s", name, event, exc_info=True)
            raise UserError(f"callback '{name}' ({origin}) failed in {event}: {what_raised(e)}. Its traceback "
                            "is in the run's train.log.") from None
    return call


def _check(name: str, origin: str, callback: Any) -> Callback:
    """The user's callback, checked to have events, as a Callback whose own events report their failures
    by name (only the events it defines: the engine skips the others, `on_train_step` included)."""
    if not _has_events(callback):
        raise UserError(f"callback '{name}' ({origin}) built a {type(callback).__name__}, which has none of the "
                        f"event methods ({', '.join(EVENTS)}): subclass trainctl.callbacks.Callback.")
    guarded = type(f"{type(callback).__name__}Guarded", (Callback,), {
        event: _guard(name, origin, event, getattr(callback, event)) for event in EVENTS if _defines(callback, event)})
    wrapped = guarded()
    wrapped.callback = callback  # the user's own object, for code that wants it back
    return wrapped


def _callback_class(path: str, target: Any, key: str) -> None:
    """Checked before the target is called: a class with event methods (or a factory annotated to return one)."""
    built = builds(target)
    if built is None or not _has_events(built):
        raise UserError(f"{key}._target_={path} is not a callback class: give a class with event methods "
                        "(subclass trainctl.callbacks.Callback).")


def _configured(cfg: DictConfig) -> dict[str, Any]:
    node = cfg.get("callbacks")
    if node is None:
        return {}
    if isinstance(node, ListConfig):  # a plain list of `_target_` nodes is accepted too
        return {f"callbacks[{i}]": item for i, item in enumerate(node)}
    if not isinstance(node, DictConfig):
        raise UserError(f"callbacks={node!r} must map names to {{_target_: ...}} nodes")
    return dict(node.items())


def check_callback_targets(cfg: DictConfig) -> None:
    """Each configured callback's `_target_` imported and checked, nothing called (for commands that run none)."""
    for name, node in _configured(cfg).items():
        if isinstance(node, DictConfig) and "_target_" in node:
            key = name if name.startswith("callbacks[") else f"callbacks.{name}"
            _callback_class(str(node._target_), import_target(str(node._target_), key), key)


def user_callbacks(cfg: DictConfig) -> list[Callback]:
    configured = _configured(cfg)
    callbacks: list[Callback] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in configured:
            continue  # the config overrides (or, with null, removes) an installed callback of the same name
        try:
            factory = ep.load()
            callbacks.append(_check(ep.name, f"entry point {ep.value}", factory()))
        except UserError:
            raise
        except Exception as e:  # a broken plugin must not look like a trainctl bug
            raise UserError(f"callback plugin '{ep.name}' ({ep.value}, entry point group {ENTRY_POINT_GROUP}) "
                            f"failed to load: {type(e).__name__}: {e}. Fix or uninstall that package.") from None
    for name, node in configured.items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise UserError(f"callbacks.{name} needs a _target_ (the callback's class), e.g. "
                            f"callbacks.{name}._target_=mypkg.MyCallback")
        callbacks.append(_check(name, str(node._target_), instantiate_target(node, check=_callback_class)))
    return callbacks
